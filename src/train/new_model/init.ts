/**
 * Weight initialisation of a fresh YOLOv5 as PyTorch builds it and export.py fuses it.
 *
 * nn.Conv2d's default init is kaiming_uniform_(a=sqrt(5)), i.e. U(±1/sqrt(fan_in)) for the weight, and the same
 * bound for a bias. YOLOv5's `Conv` has no conv bias but a BatchNorm2d (gamma 1, beta 0, running mean 0, var 1,
 * eps 1e-3 from `initialize_weights`); export fuses it into W·gamma/sqrt(var+eps) and a bias
 * beta - gamma·mean/sqrt(var+eps) = 0; an unfused model keeps the conv weight and the fresh BN as they are.
 * Detect convs keep their bias and get `_initialize_biases` (docs/training.md §6.8).
 * PyTorch's own RNG stream cannot be reproduced, so values come from a seeded generator of our own.
 * @module
 */

/** BatchNorm2d eps and momentum that YOLOv5's `initialize_weights` sets (PyTorch's momentum convention). */
export const BN_EPS = 1e-3;
export const BN_MOMENTUM = 0.03;

/** `_initialize_biases` priors: 8 objects per 640 image (log(8 / (640/s)^2) per cell), class probability 0.6. */
const OBJ_PRIOR_IMGSZ = 640;
const OBJ_PRIOR_COUNT = 8;
const CLS_PRIOR = 0.6;

/** Deterministic uniform [0, 1) stream (mulberry32): small, fast, good enough for weight init. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** `count` values from U(-bound, bound). */
  uniform(count: number, bound: number): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = (this.next() * 2 - 1) * bound;
    return out;
  }
}

/** nn.Conv2d's default weight init: U(±1/sqrt(fan_in)). */
export function convWeightInit(rng: SeededRandom, dims: [number, number, number, number]): Float32Array {
  const [c2, c1, kh, kw] = dims;
  return rng.uniform(c2 * c1 * kh * kw, 1 / Math.sqrt(c1 * kh * kw));
}

/** A fresh BatchNorm2d of `c` channels: gamma 1, beta 0, running mean 0, running var 1. */
export function batchNormInit(c: number) {
  return {
    weight: new Float32Array(c).fill(1),
    bias: new Float32Array(c),
    runningMean: new Float32Array(c),
    runningVar: new Float32Array(c).fill(1),
  };
}

/** Fused Conv+BN weight of a fresh `Conv` module: default conv init scaled by 1/sqrt(1 + eps); bias all zero. */
export function fusedConvInit(
  rng: SeededRandom,
  dims: [number, number, number, number],
): { weight: Float32Array; bias: Float32Array } {
  const c2 = dims[0];
  const weight = convWeightInit(rng, dims);
  const scale = Math.fround(1 / Math.sqrt(1 + BN_EPS));
  for (let i = 0; i < weight.length; i++) weight[i] *= scale;
  return { weight, bias: new Float32Array(c2) };
}

/**
 * A Detect conv (1x1, bias) for one level: default init, then the objectness and class bias priors per anchor
 * row of the (na, 5 + nc) bias view.
 */
export function detectConvInit(
  rng: SeededRandom,
  c1: number,
  na: number,
  nc: number,
  stride: number,
): { weight: Float32Array; bias: Float32Array } {
  const no = nc + 5;
  const bound = 1 / Math.sqrt(c1);
  const weight = rng.uniform(na * no * c1, bound);
  const bias = rng.uniform(na * no, bound);
  const objPrior = Math.log(OBJ_PRIOR_COUNT / (OBJ_PRIOR_IMGSZ / stride) ** 2);
  const clsPrior = Math.log(CLS_PRIOR / (nc - 0.99999));
  for (let a = 0; a < na; a++) {
    bias[a * no + 4] += objPrior;
    for (let c = 0; c < nc; c++) bias[a * no + 5 + c] += clsPrior;
  }
  return { weight, bias };
}
