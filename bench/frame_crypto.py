"""What frame encryption costs a Python endpoint: sealing and opening one encoded VP8
frame (docs/protocol.md 5.9), against encoding that frame with aiortc's VP8 encoder in
the same run (the work a sender does for each frame anyway).

Opens no network path. ``python bench/frame_crypto.py --frames 150``; the last line is
one JSON object (shared/BENCH.md). ``value``: median microseconds to seal and open one
frame; ``baseline``: median microseconds to encode it; ``ratio``: the share encryption
adds to the encoder's work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from aiortc.codecs.vpx import Vp8Encoder

from summitline.client.media import PatternVideoTrack
from summitline.crypto.frames import FrameKey, FrameOpener, FrameSealer


class _Whole(Vp8Encoder):
    @classmethod
    def _packetize(cls, buffer: bytes, picture_id: int) -> list[bytes]:
        return [buffer]


async def _frames(n: int, width: int, height: int) -> list[object]:
    track = PatternVideoTrack(width, height, 1000)  # a high rate: no pacing to wait for
    return [await track.recv() for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args()
    pictures = asyncio.run(_frames(args.frames + 10, args.width, args.height))
    encoder = _Whole()
    sealer, opener = FrameSealer(FrameKey.generate(0)), FrameOpener()
    opener.add(sealer.key)
    encode_us, crypto_us, sizes = [], [], []
    for i, picture in enumerate(pictures):
        t0 = time.perf_counter()
        payloads, _ = encoder.encode(picture, i % 30 == 0)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        frame = payloads[0]
        sealed = sealer.seal("vp8", frame)
        assert opener.open(sealed) == frame
        t2 = time.perf_counter()
        if i >= 10:  # warm-up
            encode_us.append((t1 - t0) * 1e6)
            crypto_us.append((t2 - t1) * 1e6)
            sizes.append(len(frame))
    value, baseline = statistics.median(crypto_us), statistics.median(encode_us)
    print(json.dumps({
        "bench": "frame_crypto", "unit": "us", "value": round(value, 1),
        "baseline": round(baseline, 1), "ratio": round(value / baseline, 4),
        "aim": "ratio < 0.05", "runs": len(crypto_us), "machine": "2 cores",
        "frame_bytes_median": int(statistics.median(sizes)),
        "resolution": f"{args.width}x{args.height}", "overhead_bytes": 30}))


if __name__ == "__main__":
    main()
