// What an interpreter hears, after the mix: the incoming volume and a tone control (bass
// and treble shelves), as on a hardware console (ISO 20109). Web Audio, no DOM.

export const BASS_HZ = 250; // below it the bass shelf acts (voice fundamentals, room boom)
export const TREBLE_HZ = 3000; // above it the treble shelf acts (consonants, sibilance)
export const TONE_DB = 12; // each shelf moves at most this far either way
export const VOLUME_MAX = 2; // up to twice the level the mix delivers

export class Earpiece {
  constructor(context) {
    this.ctx = context;
    this.input = context.createGain(); // the mix goes in here
    this.bass = context.createBiquadFilter();
    this.bass.type = "lowshelf";
    this.bass.frequency.value = BASS_HZ;
    this.treble = context.createBiquadFilter();
    this.treble.type = "highshelf";
    this.treble.frequency.value = TREBLE_HZ;
    this.input.connect(this.bass);
    this.bass.connect(this.treble);
    this.treble.connect(context.destination);
  }

  setVolume(level) {
    this.input.gain.setValueAtTime(Math.max(0, Math.min(VOLUME_MAX, level)), this.ctx.currentTime);
  }

  setBass(db) { this.shelf(this.bass, db); }
  setTreble(db) { this.shelf(this.treble, db); }

  shelf(filter, db) {
    filter.gain.setValueAtTime(Math.max(-TONE_DB, Math.min(TONE_DB, db)), this.ctx.currentTime);
  }
}
