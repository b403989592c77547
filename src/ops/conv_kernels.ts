import { bindBuffers } from "../gpu/buffers.ts";
import type { ElemType } from "../gpu/wgsl.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import { batchStride, groups } from "./context.ts";
import { tiledGemmNN } from "./gemm_tiled.ts";
import type { Dispatch, OpContext, TensorView } from "./types.ts";

// The dispatches planConv (conv.ts) assembles: one builder per entry point of wgsl/ops/conv.wgsl (GEMMs) and
// wgsl/ops/conv_direct.wgsl (direct convs), which share wgsl/ops/conv_common.wgsl.
export const FILE = "ops/conv.wgsl";
const DIRECT_FILE = "ops/conv_direct.wgsl";
/** Invocations per workgroup of every conv entry point (a power of two: bias_grad reduces by halving). */
export const WG = 64;
/** Rows and columns of C each GEMM invocation owns (the 8x8 Tile in wgsl/ops/conv_common.wgsl). */
export const TILE = 8;
export interface Geometry {
  n: number;
  cin: number;
  h: number;
  w: number;
  cout: number;
  kh: number;
  kw: number;
  ho: number;
  wo: number;
  stride: number;
  pad: number;
  /** pixels per output map, and that rounded up to a multiple of 4 (row length of the vec4 matrices) */
  P: number;
  ppad: number;
  K: number;
}

/** A matrix operand read as vec4: buffer, offset, batch stride, in vec4 units. */
export interface Vec4Operand {
  buffer: GPUBuffer;
  off4: number;
  batch4: number;
  /** vec4 columns per panel where it is an im2col column matrix stored in panels (wgsl/ops/conv_panels.wgsl);
   * absent: plain rows */
  panel?: number;
}

/**
 * Panel width, in vec4 columns (64 pixels), of the im2col column matrices the register family builds: the GEMMs
 * then walk 256-byte rows. Even (gemm_nn reads two neighbouring vec4 columns from one panel). Measured on
 * lavapipe (forward GEMM, batch 8, CPU time, plain rows -> panels; output maps): 16->16 k3 at 80x80 16.3 ->
 * 19.4 GFLOP/s, 16->32 k3 s2 at 80x80 17.0 -> 20.1, the stem (3->16 k6 s2, 160x160) 15.8 -> 19.6, 32->32 k3
 * at 40x40 17.1 -> 20.3, 32->64 k3 s2 at 40x40 19.3 -> 21.5; on 20x20 maps and smaller (rows under 2 KB)
 * within 3%.
 */
export const COL_PANEL = 16;

export const aligned = (v: TensorView, P: number) =>
  P % 4 === 0 && v.offset % 4 === 0 && batchStride(v) % 4 === 0;

/** The `Params` uniform of wgsl/ops/conv_common.wgsl: each entry point reads its own subset of the fields. */
const CONV_PARAMS = uniformLayout(
  [FILE, DIRECT_FILE],
  "Params",
  u32Fields(
    [
      ...["batch", "cin", "h", "w", "cout", "ho", "wo", "kh", "kw", "stride", "pad", "flags"],
      ...["srcOff", "srcBS", "dstOff", "dstBS", "rows", "ppad", "count", "pitch", "M", "N", "N4", "K"],
      ...[
        "aOff",
        "am",
        "ak",
        "aBatch",
        "bOff4",
        "ldb4",
        "bBatch4",
        "biasOff",
        "cOff",
        "ldc",
        "cBatch",
        "splits",
      ],
      ...["chunk4", "nsplit", "srcC", "_pad0", "postOff", "postBS", "_pad1", "_pad2"],
    ] as const,
  ),
);
type Field = (typeof CONV_PARAMS.fields)[number][0];

export type Fields = Partial<Record<Field, number>>;

/** Workgroup shape for a GEMM with `mBlocks` x `nBlocks` 8x8 tiles: up to 64 invocations (120 for 9 to 15
 * columns of tiles, below), powers of two, rows first (at most 8, and the most that leave the fewest rows of
 * tiles past mBlocks: 18 blocks take 2, not 8, which would compute 6 clamped duplicates) so narrow layers fill
 * their workgroups. Measured on lavapipe (YOLOv5n 320,
 * batch 8, CPU-ms per step, dispatches alternating), rows capped at 8 -> fewest past mBlocks: backward-data of
 * 16->32 k3 s2 (144 rows) 83.7 -> 63.0, of 32->64 k3 s2 (288 rows) 63.0 -> 56.7; all backward-data 1087 -> 1056. */
export function gemmShape(mBlocks: number, nBlocks: number): { WG_X: number; WG_Y: number } {
  const pow2 = (v: number) => 2 ** Math.ceil(Math.log2(Math.max(1, v)));
  const past = (rows: number) => Math.ceil(mBlocks / rows) * rows - mBlocks;
  const WG_Y = [8, 4, 2, 1].filter((r) => r <= pow2(mBlocks)).reduce((a, b) => past(b) < past(a) ? b : a);
  const WG_X = Math.min(WG / WG_Y, pow2(nBlocks));
  // 9 to 15 columns of tiles (maps of 10x10 pixels: 13) take one workgroup column of exactly that many rather
  // than two of 8: measured on lavapipe (YOLOv5n 320, batch 8, CPU-ms per step, dispatches alternating), the GEMMs
  // of convs with 10x10 outputs ~10% faster (forward of 128->256 k3 s2 55.0 -> 47.8; all forward 1048 -> 1018,
  // backward-data 1033 -> 1017). With 50 columns (20x20), 10 wide instead of 8 was 15% slower.
  if (WG_X === 8 && nBlocks > 8 && nBlocks < 16) return { WG_X: nBlocks, WG_Y };
  return { WG_X, WG_Y };
}

/** gemm_nn's A_MODE: vec4 loads of A along k (row-major, 1) or along m (transposed, 2) where 4-aligned. */
function aMode(f: Fields): number {
  const aligned4 = (...v: (number | undefined)[]) => v.every((x) => (x ?? 0) % 4 === 0);
  if (f.ak === 1 && aligned4(f.aOff, f.am, f.K, f.aBatch)) return 1;
  if (f.am === 1 && aligned4(f.aOff, f.ak, f.aBatch)) return 2;
  return 0;
}

/** The Params uniform holding the fields of `f` (other properties, e.g. Geometry's n and P, are not fields). */
export function uniform(ctx: OpContext, f: Fields, label: string): GPUBuffer {
  const fields = Object.fromEntries(CONV_PARAMS.fields.map(([k]) => [k, f[k]])) as Fields;
  return ctx.uniform(CONV_PARAMS.pack(fields, label), label);
}

/** gemm_nn's `flags` bit (both families): also write silu(C) into `post`, a SiLU fused after the conv. */
const SILU_FLAG = 4;

/** C[z] (=|+=) A . B[z] (+ bias): the conv's forward and backward-data GEMM in the context's kernel family. With
 * `post` (forward only), silu of each stored value is also written there. B (b.panel), or A read as vec4 rows
 * (`aPanel`), may be a column matrix in panels: register family only. With `zSum` (register family), C[z] is
 * the sum of the products of batch items z * zSum onwards: n / zSum of them. */
export function gemmNN(
  ctx: OpContext,
  label: string,
  f: Fields & { M: number; K: number; P: number; ppad: number; n: number; zSum?: number },
  aBuf: GPUBuffer,
  b: Vec4Operand,
  cBuf: GPUBuffer,
  biasBuf: GPUBuffer,
  opClass: string,
  elem: ElemType,
  post?: TensorView,
  aPanel?: number,
): Dispatch {
  const N4 = f.ppad / 4;
  const cost = {
    flops: 2 * f.n * f.M * f.K * f.P,
    bytes: 4 * (f.M * f.K + f.n * (f.K + (post ? 2 : 1) * f.M) * f.P),
    opClass,
  };
  const fused = post
    ? { flags: (f.flags ?? 0) | SILU_FLAG, postOff: post.offset, postBS: batchStride(post) }
    : { postOff: 0, postBS: 0 };
  // Without a SiLU the kernel's output slot holds C again: the binding is in the layout, never written.
  const postBuf = post?.buffer ?? cBuf;
  const zSum = f.zSum ?? 1;
  if (ctx.kernels === "tiled") {
    if (b.panel || aPanel) throw new Error(`gemmNN: ${label}: the tiled family reads no column panels`);
    if (zSum !== 1) throw new Error(`gemmNN: ${label}: the tiled family sums no batch items`);
    const tiled = { ...f, ...fused, N: f.P, bOff4: b.off4, ldb4: N4, bBatch4: b.batch4 };
    const buffers = { a: aBuf, b: b.buffer, c: cBuf, bias: biasBuf, post: postBuf };
    return { ...tiledGemmNN(ctx, label, tiled, buffers, elem), ...cost };
  }
  const shape = gemmShape(Math.ceil(f.M / TILE), Math.ceil(N4 / 2));
  const vec4 = [f.cOff ?? 0, f.cBatch ?? 0, f.ldc ?? 0, fused.postOff, fused.postBS].every((v) =>
    v % 4 === 0
  );
  const A_MODE = aMode(f);
  if (aPanel && A_MODE !== 1) throw new Error(`gemmNN: ${label}: A in panels must be read as vec4 rows`);
  const panels = { A_PANEL: aPanel ?? 0, B_PANEL: b.panel ?? 0 };
  if (f.n % zSum !== 0) throw new Error(`gemmNN: ${label}: ${f.n} batch items in sums of ${zSum}`);
  const pipeline = ctx.programs.get(
    FILE,
    vec4 ? "gemm_nn_vec4" : "gemm_nn",
    { ...shape, A_MODE, ...panels, ...(zSum > 1 ? { Z_SUM: zSum } : {}) },
    elem,
  );
  const u = uniform(ctx, { ...f, ...fused, N: f.P, N4, bOff4: b.off4, ldb4: N4, bBatch4: b.batch4 }, label);
  return {
    label,
    pipeline,
    bindGroup: bindBuffers(ctx.device, pipeline, {
      2: aBuf,
      3: b.buffer,
      4: aBuf,
      [vec4 ? 9 : 5]: cBuf,
      6: biasBuf,
      7: u,
      [vec4 ? 11 : 10]: postBuf,
    }, label),
    workgroups: [groups(N4, 2 * shape.WG_X), groups(f.M, TILE * shape.WG_Y), f.n / zSum],
    ...cost,
  };
}

/** The layout conv_direct_rows (wgsl/ops/conv_direct.wgsl) reads the weight in: [cout][tapRows][cpad], the input
 * channels padded to cpad (vec4s along them), the taps to tapRows; made by conv_weight_grad.ts
 * transposedWeight. */
export interface TransposedWeight {
  buffer: GPUBuffer;
  cpad: number;
  tapRows: number;
}

/** Whether backward-data of a stride-1 conv, as the direct conv of dy, can read dy's rows as vec4
 * (conv_direct_rows): a 3x3 kernel with padding 1, maps whose rows hold whole 8-pixel tiles, dy and dx 4-aligned.
 * Measured on lavapipe (CPU time, batch 8; 16->16 at 80x80, 32->32 at 40x40): 10.3 GFLOP/s for conv_direct,
 * ~14 with dy's rows as vec4, ~17.8 with the weights as vec4 too. */
export function directRows(g: Geometry, dy: TensorView, dx: TensorView): boolean {
  return g.kh === 3 && g.kw === 3 && g.pad === 1 && g.w % TILE === 0 && [dy, dx].every(
    (v) => v.offset % 4 === 0 && batchStride(v) % 4 === 0,
  );
}

/** Backward-data of a stride-1 conv as the direct conv of dY with the transposed, rotated kernel
 * (conv_direct in wgsl/ops/conv_direct.wgsl): dX is written without dcol or col2im. With `wt` (where directRows
 * holds) conv_direct_rows, reading dy's rows and wt as vec4. `g` is the forward conv's geometry; `flags` 2 adds
 * into dx. */
export function directBackwardData(
  ctx: OpContext,
  label: string,
  g: Geometry,
  flags: number,
  w: TensorView,
  dy: TensorView,
  dx: TensorView,
  wt?: TransposedWeight,
): Dispatch {
  const P = g.h * g.w;
  const N4 = Math.ceil(P / 4);
  const cOff = dx.offset;
  const cBatch = batchStride(dx);
  const vec4 = [cOff, cBatch, P].every((v) => v % 4 === 0);
  const shape = gemmShape(Math.ceil(g.cin / TILE), Math.ceil(P / TILE));
  const entry = wt ? "conv_direct_rows" : vec4 ? "conv_direct_vec4" : "conv_direct";
  const pipeline = ctx.programs.get(DIRECT_FILE, entry, { ...shape, KH: g.kh, KW: g.kw });
  // The weight's strides: per input channel and tap of w, or (vec4 units) of wt's rows and blocks.
  const weight = wt
    ? { aOff: 0, am: wt.cpad / 4, ak: (wt.tapRows * wt.cpad) / 4 }
    : { aOff: w.offset, am: g.kh * g.kw, ak: g.cin * g.kh * g.kw };
  const u = uniform(ctx, {
    flags,
    srcC: g.cout,
    h: g.ho,
    w: g.wo,
    ho: g.h,
    wo: g.w,
    pad: g.kh - 1 - g.pad,
    srcOff: dy.offset,
    srcBS: batchStride(dy),
    M: g.cin,
    N: P,
    N4,
    ...weight,
    cOff,
    ldc: P,
    cBatch,
  }, label);
  return {
    label,
    pipeline,
    bindGroup: bindBuffers(ctx.device, pipeline, {
      [wt ? 12 : 0]: dy.buffer,
      [wt ? 4 : 2]: wt ? wt.buffer : w.buffer,
      [vec4 ? 9 : 5]: dx.buffer,
      7: u,
    }, label),
    workgroups: [groups(P, TILE * shape.WG_X), groups(g.cin, TILE * shape.WG_Y), g.n],
    flops: 2 * g.n * g.cin * g.K * g.P,
    bytes: 4 * (g.cout * g.K + g.n * (g.cout * g.P + g.cin * P)),
    opClass: "conv_bwd_data",
  };
}

/** Lanes per bias_grad workgroup (one per output channel): one SIMD group of lavapipe's, as silu_bias_grad's
 * (src/ops/silu_bias_grad.ts says why). Measured there (YOLOv5n 320, batch 8, CPU-ms per step, dispatches
 * alternating), the detect heads' three: 64 lanes 12.1 -> 8 lanes 9.6. */
const BIAS_GRAD_WG = 8;

export function biasGrad(
  ctx: OpContext,
  label: string,
  f: Fields & Geometry,
  dy: TensorView,
  db: TensorView,
): Dispatch {
  const pipeline = ctx.programs.get(FILE, "bias_grad", { WG: BIAS_GRAD_WG });
  const u = uniform(
    ctx,
    { ...f, srcOff: dy.offset, srcBS: batchStride(dy), dstOff: db.offset },
    `${label} bias_grad`,
  );
  return {
    label: `${label} bias_grad`,
    pipeline,
    bindGroup: bindBuffers(ctx.device, pipeline, { 0: dy.buffer, 1: db.buffer, 7: u }, `${label} bias_grad`),
    workgroups: [f.cout, 1, 1],
    flops: f.n * f.cout * f.P,
    bytes: 4 * f.n * f.cout * f.P,
    opClass: "conv_bwd_weight",
  };
}
