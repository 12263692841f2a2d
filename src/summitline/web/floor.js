// Sound an interpreter can work from (issue 16), as the browser sends and plays it. No DOM.
//
// - Opus full band, mono, at least 64 kb/s (summitline/client/opus.py says why). A browser
//   encodes what the remote description's fmtp line allows, 32 kb/s by default, so every
//   remote description this end sets gets the floor's parameters first (`floorSdp`): its
//   signature was checked on the text as received, and these lines only change what this
//   end sends.
// - With a plan that says "studio", no echo cancellation, noise suppression or automatic
//   gain on this end's microphone (`studioMicrophone`): they take steady tones, breaths
//   and the room's quiet for noise to remove, and ride the level an interpreter listens
//   to. The plan is known only once the session is welcomed, after the page captured
//   its microphone, so the session captures it again then, before any link sends.
// - The shortest playout wait on the interpretation paths (`lowDelay`): the interpreter's
//   floor and the listener's channel.

// (useinbandfec and minptime stay as the remote wrote them.)
export const OPUS_FMTP = {
  maxaveragebitrate: 64000, stereo: 0, "sprop-stereo": 0, maxplaybackrate: 48000,
  "sprop-maxcapturerate": 48000,
};

export const STUDIO = { echoCancellation: false, noiseSuppression: false,
                        autoGainControl: false };

// `sdp` with every Opus payload type's fmtp line carrying OPUS_FMTP (added or replacing
// the same parameters; others kept).
export function floorSdp(sdp) {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const lines = sdp.split(eol);
  const opus = new Set();
  for (const line of lines) {
    const m = /^a=rtpmap:(\d+) opus\/48000/i.exec(line);
    if (m) opus.add(m[1]);
  }
  const out = [];
  for (const line of lines) {
    const m = /^a=fmtp:(\d+) (.*)$/.exec(line);
    if (m && opus.has(m[1])) {
      out.push(`a=fmtp:${m[1]} ${withFloor(m[2])}`);
      continue;
    }
    out.push(line);
    const r = /^a=rtpmap:(\d+) opus\/48000/i.exec(line);
    if (r && !lines.some((l) => l.startsWith(`a=fmtp:${r[1]} `))) {
      out.push(`a=fmtp:${r[1]} ${withFloor("")}`);
    }
  }
  return out.join(eol);
}

function withFloor(params) {
  const kept = params.split(";").map((p) => p.trim()).filter(Boolean)
    .filter((p) => !(p.split("=")[0].trim().toLowerCase() in OPUS_FMTP));
  return [...kept, ...Object.entries(OPUS_FMTP).map(([k, v]) => `${k}=${v}`)].join(";");
}

// The microphone of `stream` again, without voice processing: Chromium keeps a live
// track's processing whatever applyConstraints asks (read on Chromium 156: the call
// succeeds and getSettings() still says true), so a new track is captured from the same
// device and put in `stream` in place of the old one, on or off as that one was. The old
// tracks are returned, still live, for whoever meters them: the caller stops them.
export async function studioMicrophone(stream) {
  const old = stream?.getAudioTracks() || [];
  if (old.length === 0) return null;
  const { deviceId } = old[0].getSettings();
  const captured = await navigator.mediaDevices.getUserMedia({ audio: {
    ...STUDIO, channelCount: 1, sampleRate: 48000,
    ...(deviceId ? { deviceId: { exact: deviceId } } : {}) } });
  const track = captured.getAudioTracks()[0];
  track.enabled = old[0].enabled;
  for (const t of old) stream.removeTrack(t);
  stream.addTrack(track);
  return { track, replaced: old };
}

// Play what `receiver` gets as soon as it can: no extra wait in the jitter buffer.
export function lowDelay(receiver) {
  if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = 0;
  else if ("playoutDelayHint" in receiver) receiver.playoutDelayHint = 0;
}
