// Shared scaffolding for op tests: seeded random data, buffers laid out with offsets, running plans, comparing.
import assert from "node:assert/strict";
import { readF32 } from "../../src/gpu/buffers.ts";
import { uploadF32 } from "../_helpers/buffers.ts";
import { mulberry32 } from "../_helpers/random.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { GpuMemory } from "../../src/gpu/memory.ts";
import { createOpContext, submitDispatches } from "../../src/ops/context.ts";
import type { KernelFamily } from "../../src/ops/kernel_family.ts";
import type { Dispatch, OpContext, TensorView } from "../../src/ops/types.ts";

/** Deterministic uniform numbers in [-1, 1) (mulberry32), so failures reproduce. */
export function rng(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() * 2 - 1;
}

export function randomArray(n: number, rand: () => number): Float64Array {
  return Float64Array.from({ length: n }, rand);
}

const contexts = new WeakMap<GPUDevice, Map<KernelFamily | undefined, OpContext>>();
/** The device's shared context planning `kernels` (default: the device's family, src/ops/kernel_family.ts). */
export function opContext(device: GPUDevice, kernels?: KernelFamily): OpContext {
  let byFamily = contexts.get(device);
  if (!byFamily) contexts.set(device, byFamily = new Map());
  let ctx = byFamily.get(kernels);
  if (!ctx) {
    ctx = createOpContext(new GpuMemory(device), new ProgramCache(device), kernels);
    byFamily.set(kernels, ctx);
  }
  return ctx;
}

/** A tensor placed `offset` floats into its own buffer, whose other floats hold `fill` so stray writes show. */
export interface Placed {
  view: TensorView;
  /** full buffer contents as uploaded */
  initial: Float32Array;
}

export function place(
  device: GPUDevice,
  shape: number[],
  data: ArrayLike<number> | undefined,
  opts: { offset?: number; batchStride?: number; fill?: number; label?: string } = {},
): Placed {
  const per = shape.slice(1).reduce((a, b) => a * b, 1);
  const bs = opts.batchStride ?? per;
  const offset = opts.offset ?? 0;
  const size = offset + (shape[0] - 1) * bs + per + 5;
  const initial = new Float32Array(size).fill(opts.fill ?? 0);
  if (data) {
    for (let i = 0; i < shape[0] * per; i++) initial[offset + Math.floor(i / per) * bs + (i % per)] = data[i];
  }
  const buffer = uploadF32(device, initial, opts.label ?? "test tensor");
  return { view: { buffer, offset, shape, batchStride: opts.batchStride }, initial };
}

/** Reads the whole buffer behind `p` and splits it into the view's elements and everything else. */
export async function readPlaced(
  device: GPUDevice,
  p: Placed,
): Promise<{ inside: Float32Array; outside: number[] }> {
  const all = await readF32(device, p.view.buffer, p.initial.length);
  const per = p.view.shape.slice(1).reduce((a, b) => a * b, 1);
  const bs = p.view.batchStride ?? per;
  const inside = new Float32Array(p.view.shape[0] * per);
  const mark = new Uint8Array(all.length);
  for (let i = 0; i < inside.length; i++) {
    const at = p.view.offset + Math.floor(i / per) * bs + (i % per);
    inside[i] = all[at];
    mark[at] = 1;
  }
  const outside: number[] = [];
  all.forEach((v, i) => {
    if (!mark[i]) outside.push(v - p.initial[i]);
  });
  return { inside, outside };
}

export async function run(device: GPUDevice, dispatches: Dispatch[]): Promise<void> {
  submitDispatches(device, dispatches);
  await device.queue.onSubmittedWorkDone();
}

/** Asserts max |got - want| <= tol * max(1, max |want|) and names the worst element. */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0, at = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= worst)) [worst, at] = [e, i];
  }
  assert.ok(
    worst <= tol * scale,
    `${what}: element ${at} is ${got[at]}, expected ${want[at]} (error ${worst}, allowed ${tol * scale})`,
  );
}

/** Asserts nothing outside a view was written. */
export function assertUntouched(outside: number[], what: string): void {
  assert.ok(outside.every((d) => d === 0), `${what}: a kernel wrote outside its view`);
}

/**
 * Central-difference check of an analytic gradient in float64: for sampled indices i,
 * (L(p + h e_i) - L(p - h e_i)) / 2h must match grad[i]. With float64 and h = 1e-5 the truncation error
 * (~h^2 * L''') and rounding error (~1e-16 * |L| / h) are both far below FD_TOL for these O(1) functions.
 */
export const FD_STEP = 1e-5;
export const FD_TOL = 1e-6;
export function checkFiniteDifferences(
  params: Float64Array,
  grad: ArrayLike<number>,
  loss: () => number,
  what: string,
  samples = 12,
): void {
  const rand = rng(params.length * 7 + 1);
  for (let s = 0; s < Math.min(samples, params.length); s++) {
    const i = s === 0 ? 0 : Math.floor(((rand() + 1) / 2) * params.length);
    const keep = params[i];
    params[i] = keep + FD_STEP;
    const up = loss();
    params[i] = keep - FD_STEP;
    const down = loss();
    params[i] = keep;
    const fd = (up - down) / (2 * FD_STEP);
    assert.ok(
      Math.abs(fd - grad[i]) <= FD_TOL * Math.max(1, Math.abs(fd)),
      `${what}[${i}]: analytic ${grad[i]}, central difference ${fd}`,
    );
  }
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
