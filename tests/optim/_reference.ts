// Plain float64 TypeScript transcriptions of torch 1.13's clip_grad_norm_, SGD (nesterov), Adam and AdamW
// (docs/training.md §2, §4) for one parameter tensor, used to check the WGSL kernels on random shapes.
export interface RefState {
  buf?: number[];
  m?: number[];
  v?: number[];
}

export interface RefHyper {
  kind: "SGD" | "Adam" | "AdamW";
  lr: number;
  momentum: number;
  wd: number;
  step: number;
  beta2?: number;
  eps?: number;
}

export function clipCoef(grads: number[][], maxNorm: number): { norm: number; coef: number } {
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((t, x) => t + x * x, 0), 0));
  return { norm, coef: Math.min(maxNorm / (norm + 1e-6), 1) };
}

/** Updates p and state in place with the (already clipped) gradient g. */
export function refStep(p: number[], g: number[], state: RefState, h: RefHyper): void {
  const beta2 = h.beta2 ?? 0.999, eps = h.eps ?? 1e-8;
  if (h.kind === "SGD") {
    const d = g.map((x, k) => x + h.wd * p[k]);
    state.buf = state.buf ? state.buf.map((b, k) => h.momentum * b + d[k]) : [...d];
    for (let k = 0; k < p.length; k++) p[k] -= h.lr * (d[k] + h.momentum * state.buf[k]);
    return;
  }
  if (h.kind === "AdamW") { for (let k = 0; k < p.length; k++) p[k] *= 1 - h.lr * h.wd; }
  const gg = h.kind === "Adam" ? g.map((x, k) => x + h.wd * p[k]) : g;
  state.m ??= g.map(() => 0);
  state.v ??= g.map(() => 0);
  const bc1 = 1 - h.momentum ** h.step, bc2 = 1 - beta2 ** h.step;
  for (let k = 0; k < p.length; k++) {
    state.m[k] = h.momentum * state.m[k] + (1 - h.momentum) * gg[k];
    state.v[k] = beta2 * state.v[k] + (1 - beta2) * gg[k] * gg[k];
    p[k] -= (h.lr / bc1) * state.m[k] / (Math.sqrt(state.v[k]) / Math.sqrt(bc2) + eps);
  }
}
