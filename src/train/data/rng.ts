/**
 * A seeded random source for shuffling and augmentation (sfc32 seeded through splitmix32). YOLOv5 draws from
 * Python's `random` and NumPy in DataLoader workers, so its exact augmentations cannot be replayed anyway; what
 * matters here is that one seed gives one sequence on every machine, so runs and tests are reproducible.
 */
/** An Rng's whole state: continuing from it draws what the Rng it was taken from would have drawn next. */
export type RngState = [number, number, number, number];

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    for (let i = 0; i < 12; i++) this.random();
  }

  /** The current state (see {@link RngState}). */
  state(): RngState {
    return [this.a, this.b, this.c, this.d];
  }

  /** Continue from a state {@link state} returned. */
  restore(state: RngState): void {
    [this.a, this.b, this.c, this.d] = state.map((v) => v >>> 0);
  }

  /** Uniform in [0, 1), like `random.random()`. */
  random(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t / 4294967296;
  }

  /** `random.uniform(lo, hi)`. */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.random();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}
