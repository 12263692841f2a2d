"""Opus as interpreters need it: the whole band of the floor, in one channel.

An interpreter works from what the principal's microphone picks up: sibilants and
consonants above 8 kHz tell words apart, and a voice coded as speech (SILK, the
narrow bands aiortc's and browsers' voice settings slide to) tires the ear in a
two-hour call. ISO 20109 asks for 125 Hz to 15 kHz. So every voice this endpoint sends
(the floor to interpreters and the other principal, the channel to listeners) is Opus
at 48 kHz, full band, mono, ``BITRATE`` or more, in its general-audio mode (CELT), which
keeps the band's levels however tonal the signal.

aiortc's own ``OpusEncoder`` (read from 1.16.0) codes stereo at 96 kb/s in its voice
mode (``application=voip``). ``FloorOpusEncoder`` is the same encoder with these
settings; client/encoding.py encodes with it once for every link. What a browser sends
follows the ``fmtp`` line a receiver writes (web/floor.js sets it on both sides).
"""

from __future__ import annotations

from aiortc.codecs.opus import SAMPLE_RATE, SAMPLES_PER_FRAME, TIME_BASE, OpusEncoder
from av import AudioResampler, CodecContext

# 64 kb/s mono CELT carries 20 Hz - 20 kHz; ISO 24019 asks for at least this much.
BITRATE = 64_000
CHANNELS = 1
# Constrained VBR: the average stays at BITRATE, with the ups and downs a frame needs.
VBR = "constrained"
# ffmpeg's libopus wrapper turns a cutoff of 20 kHz into OPUS_BANDWIDTH_FULLBAND.
FULLBAND_CUTOFF_HZ = 20_000
# The RFC 7587 fmtp parameters that say so to a browser sending to us.
FMTP = {"maxaveragebitrate": str(BITRATE), "stereo": "0", "sprop-stereo": "0",
        "maxplaybackrate": str(SAMPLE_RATE), "sprop-maxcapturerate": str(SAMPLE_RATE)}

# RFC 6716 §3.1: the top five bits of a packet's first byte (TOC) are its configuration
# (0-11 SILK, 12-15 hybrid, 16-31 CELT-only, each in groups by bandwidth); bit 2 is stereo.


def toc(packet: bytes) -> tuple[str, str, bool]:
    """An Opus packet's mode ("SILK", "hybrid", "CELT"), bandwidth ("NB" narrow to "FB"
    full), and whether it is stereo."""
    config, stereo = packet[0] >> 3, bool(packet[0] & 0x04)
    if config < 12:
        return "SILK", ("NB", "MB", "WB")[config // 4], stereo
    if config < 16:
        return "hybrid", ("SWB", "FB")[(config - 12) // 2], stereo
    return "CELT", ("NB", "WB", "SWB", "FB")[(config - 16) // 4], stereo


class FloorOpusEncoder(OpusEncoder):
    """aiortc's Opus encoder, full band and mono at ``BITRATE``."""

    def __init__(self) -> None:
        super().__init__()
        layout = "mono" if CHANNELS == 1 else "stereo"
        self.codec = CodecContext.create("libopus", "w")
        self.codec.bit_rate = BITRATE
        self.codec.format = "s16"
        self.codec.layout = layout
        self.codec.options = {"application": "audio", "vbr": VBR,
                              "cutoff": str(FULLBAND_CUTOFF_HZ)}
        self.codec.sample_rate = SAMPLE_RATE
        self.codec.time_base = TIME_BASE
        self.resampler = AudioResampler(format="s16", layout=layout, rate=SAMPLE_RATE,
                                        frame_size=SAMPLES_PER_FRAME)
