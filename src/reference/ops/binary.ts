/** Plain-TypeScript same-shape binary ops in float64 with their gradients (references for GPU kernels). */
export interface BinaryOp {
  f(a: number, b: number): number;
  /** d f / d a and d f / d b */
  da(a: number, b: number): number;
  db(a: number, b: number): number;
}

export const add: BinaryOp = { f: (a, b) => a + b, da: () => 1, db: () => 1 };
export const mul: BinaryOp = { f: (a, b) => a * b, da: (_a, b) => b, db: (a) => a };

export function binaryForward(op: BinaryOp, a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (v, i) => op.f(v, b[i]));
}

/** Gradients of sum(f(a, b) * dc) with respect to a and b. */
export function binaryBackward(
  op: BinaryOp,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dc: ArrayLike<number>,
) {
  return {
    da: Float64Array.from(a, (v, i) => dc[i] * op.da(v, b[i])),
    db: Float64Array.from(a, (v, i) => dc[i] * op.db(v, b[i])),
  };
}
