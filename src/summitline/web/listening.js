// What a principal hears: the original floor, or an interpretation channel with the
// original ducked underneath at a level the principal sets. Web Audio, no DOM.
//
// Handover: the booth has one live interpreter, but the partners' voices reach us over
// different paths; we keep playing the voice we play until the newly live interpreter
// is heard (its audio level from getStats), then switch, never playing both. As
// summitline/client/listening.py.

const SILENT = 0.01;
const SWITCH_TIMEOUT_MS = 1500;

export class Listening {
  // `output`: where the mix goes (the interpreter's console puts its volume and tone
  // there); the speakers by default.
  constructor(context, output = context.destination) {
    this.ctx = context;
    this.output = output;
    this.nodes = new Map(); // remote -> { gain, role, stream, source }
    this.members = new Set(); // the plan's interpreters of the chosen channel
    this.channel = null; // null: the original
    this.duck = 0.3; // the original's level under a channel
    this.live = null;
    this.playing = null;
    this.since = 0;
  }

  // A new stream from the same remote (its peer connection was replaced) replaces the
  // old one, or that remote would fall silent.
  attach(remote, stream, role) {
    const old = this.nodes.get(remote);
    if ((old && old.stream === stream) || stream.getAudioTracks().length === 0) return;
    if (old) old.source.disconnect();
    const gain = old ? old.gain : this.ctx.createGain();
    if (!old) gain.connect(this.output);
    const source = this.ctx.createMediaStreamSource(stream);
    source.connect(gain);
    this.nodes.set(remote, { gain, role, stream, source });
    this.apply();
  }

  choose(channel, booth, members = []) {
    this.channel = channel;
    this.members = new Set(members);
    this.live = null;
    this.playing = null;
    this.booth(booth);
  }

  setDuck(level) {
    this.duck = level;
    this.apply();
  }

  booth(booth) {
    let live = this.channel ? booth.live[this.channel] || null : null;
    if (live && this.members.size && !this.members.has(live)) live = null; // not of this booth
    if (live !== this.live) {
      this.live = live;
      this.since = performance.now();
      if (!this.playing) this.playing = live;
    }
    this.apply();
  }

  // levels: remote -> audio level (0..1) from getStats
  levels(levels) {
    if (this.live && this.live !== this.playing &&
        ((levels[this.live] || 0) > SILENT || performance.now() - this.since > SWITCH_TIMEOUT_MS)) {
      this.playing = this.live;
      this.apply();
    }
  }

  gainOf(remote) {
    const node = this.nodes.get(remote);
    return node ? node.gain.gain.value : null;
  }

  apply() {
    for (const [remote, { gain, role }] of this.nodes) {
      const level = role === "interpreter" ? (this.channel && remote === this.playing ? 1 : 0)
        : this.channel ? this.duck : 1;
      gain.gain.setValueAtTime(level, this.ctx.currentTime);
    }
  }
}

// The level of a microphone or of a remote voice (0..1, the peak of the last 0.68 s at
// 48 kHz), for a meter. It reads a clone of the track, kept enabled, so that an
// interpreter sees its microphone work while off air (the sent track is disabled then);
// the clone is never sent. A peak over a long window: sampled a few times a second, a
// short syllable is not missed.
export class LevelMeter {
  constructor(context, track) {
    this.track = track.clone();
    this.track.enabled = true;
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 32768;
    this.source = context.createMediaStreamSource(new MediaStream([this.track]));
    this.source.connect(this.analyser);
    this.samples = new Float32Array(this.analyser.fftSize);
  }

  level() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let peak = 0;
    for (const x of this.samples) peak = Math.max(peak, Math.abs(x));
    return Math.min(1, peak);
  }

  stop() {
    this.source.disconnect();
    this.track.stop();
  }
}
