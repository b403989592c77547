import { MAX_WORKGROUPS_PER_DIMENSION } from "../gpu/device.ts";
import type { ElemType } from "../gpu/wgsl.ts";
import { accumulateFlag, batchStride, expectShape } from "./context.ts";
import {
  aligned,
  biasGrad,
  COL_PANEL,
  directBackwardData,
  directRows,
  type Fields,
  gemmNN,
  type Geometry,
  type Vec4Operand,
} from "./conv_kernels.ts";
import { col2im, im2col } from "./conv_columns.ts";
import { transposedWeight, weightGrad } from "./conv_weight_grad.ts";
import { siluBiasGrad } from "./silu_bias_grad.ts";
import type { Dispatch, OpContext, OpPlan, TensorView } from "./types.ts";

/** Stride-1 k>1 convs with at least this many pixels per map and at most DIRECT_MAX_COUT output channels take
 * backward-data as a direct conv of dY (no dcol, no col2im). Measured on lavapipe, YOLOv5n 320 batch 8,
 * GEMM + col2im vs direct: 16->16 k3 at 80 px 113 / 69+42 -> 57 / 43 ms, 32->32 k3 at 40 px 68 / 76 -> 54 /
 * 55 ms; with 64+ channels on 20x20 maps or smaller the GEMM was faster (128->128 k3 at 10 px 41 -> 71 ms). */
const DIRECT_MIN_PIXELS = 1600;
const DIRECT_MAX_COUT = 32;

export interface ConvArgs {
  /** input [N, Cin, H, W] */
  x: TensorView;
  /** weight [Cout, Cin, kh, kw] (usually a view into the flat params buffer) */
  w: TensorView;
  /**
   * The same weight in an f16 copy of the params (amp): the GEMMs then read f16 operands (this, f16 im2col
   * columns, an f16 copy of dy) and accumulate in f32; x, y, dy, dx, dw and db stay f32.
   */
  halfWeights?: TensorView;
  /** bias [Cout] */
  b?: TensorView;
  /** output [N, Cout, Ho, Wo], overwritten by forward */
  y: TensorView;
  /** gradient of y; required when any of dx, dw, db is given */
  dy?: TensorView;
  /** gradient of x: overwritten, or added to when `accumulate` (x fans out to several consumers) */
  dx?: TensorView;
  /**
   * The input channels of dx backward-data computes, where only part of x's gradient is read (x a Concat whose
   * other inputs come from frozen layers, which take no gradient); dx's other channels are left as they are.
   * Default: all of them.
   */
  dxChannels?: { start: number; count: number };
  /** weight gradient: always ADDED to (gradients of successive batches sum until the optimizer zeroes them) */
  dw?: TensorView;
  /** bias gradient: always ADDED to */
  db?: TensorView;
  stride: number;
  pad: number;
  dilation?: number;
  groups?: number;
  accumulate?: boolean;
  /** A SiLU fused after the conv (the Conv+SiLU of every YOLOv5 block): forward also writes silu(y) into
   * `silu.y`, and backward takes that output's gradient `silu.dy` and makes dy = silu.dy * silu'(y) in the pass
   * that sums db, so neither direction has a pass of its own. Needs the bias; dy (overwritten) and db must be
   * given where silu.dy is. */
  silu?: { y: TensorView; dy?: TensorView };
  /** share the im2col columns with every conv of the context and rebuild them in backward (see planConv) */
  recomputeColumns?: boolean;
  /** largest scratch buffer one dispatch may bind; defaults to the device's maxStorageBufferBindingSize. Batches
   * whose im2col matrix is larger are planned in batch slices, one after the other. */
  maxScratchBytes?: number;
}

/**
 * Plans a groups-1 convolution. Forward: im2col (skipped for aligned 1x1 stride-1 convs) + GEMM with fused bias
 * (and a fused SiLU's output, `silu`). Backward, in order: db += bias_grad(dy) (with a fused SiLU: dy = its
 * gradient * silu'(y) and db in one pass); dW += split GEMM dY . col^T + reduce; dx (=|+=) col2im(W^T . dY).
 * The GEMMs are the context's kernel family (src/ops/kernel_family.ts).
 * By default each conv owns its columns (N * Cin*kh*kw * ceil4(Ho*Wo) floats), kept from forward until
 * backward-weight reads them, then reused by backward-data for dcol. With `recomputeColumns` they live in a
 * transient slot every conv of a program shares (sized for the largest) and backward rebuilds them before the
 * weight GEMM: less memory (yolov5n at 320, batch 8: 250 -> 88 MB) for one more im2col per conv (~8% of a
 * lavapipe step). The weight-gradient partial sums and a padded dy copy are always transient.
 */
export function planConv(ctx: OpContext, a: ConvArgs): OpPlan {
  const g = convGeometry(a);
  const label = `conv ${g.cin}->${g.cout} k${g.kh}x${g.kw} s${g.stride} ${g.h}x${g.w}`;
  // Per image: im2col (or padded dy) bytes, and grid rows (im2col rows and col2im planes ride workgroup z).
  const perItem = 4 * Math.max(g.K, g.cout) * g.ppad;
  const limit = a.maxScratchBytes ?? ctx.device.limits.maxStorageBufferBindingSize;
  const slice = Math.min(
    Math.floor(limit / perItem),
    Math.floor(MAX_WORKGROUPS_PER_DIMENSION / Math.max(g.K, g.cout, g.cin)),
  );
  if (slice < 1) {
    throw new Error(`planConv: ${label} needs ${perItem} bytes of im2col per image, limit ${limit}`);
  }
  if (slice < g.n) return planInBatchSlices(ctx, a, slice);
  const cols = planColumns(ctx, a, g, label);
  const wk = weightOperand(a);
  const forward: Dispatch[] = [];
  if (cols.col) forward.push(cols.im2col());
  forward.push(gemmNN(
    ctx,
    `${label} forward`,
    {
      ...cols.common,
      flags: a.b ? 1 : 0,
      M: g.cout,
      K: g.K,
      aOff: wk.w.offset,
      am: g.K,
      ak: 1,
      biasOff: a.b?.offset ?? 0,
      cOff: a.y.offset,
      ldc: g.P,
      cBatch: batchStride(a.y),
    },
    wk.w.buffer,
    cols.xcol,
    a.y.buffer,
    (a.b ?? a.w).buffer,
    "conv_fwd",
    wk.elem,
    a.silu?.y,
  ));
  if (!a.dx && !a.dw && !a.db) return { forward, backward: [] };
  return { forward, backward: planBackward(ctx, a, g, label, cols) };
}

/** The weight the GEMMs read, and the element type of every GEMM operand. */
function weightOperand(a: ConvArgs): { w: TensorView; elem: ElemType } {
  if (!a.halfWeights) return { w: a.w, elem: "f32" };
  expectShape("planConv", "halfWeights", a.halfWeights, a.w.shape);
  return { w: a.halfWeights, elem: "f16" };
}

/** The conv's shapes, checked against x, w, y and b. */
function convGeometry(a: ConvArgs): Geometry {
  if ((a.dilation ?? 1) !== 1 || (a.groups ?? 1) !== 1) {
    throw new Error(`planConv: dilation ${a.dilation} groups ${a.groups}, expected 1 and 1 (YOLOv5 convs)`);
  }
  const [n, cin, h, w] = a.x.shape;
  const [cout, wcin, kh, kw] = a.w.shape;
  if (wcin !== cin) throw new Error(`planConv: weight [${a.w.shape}] does not match input [${a.x.shape}]`);
  const { stride, pad } = a;
  const ho = Math.floor((h + 2 * pad - kh) / stride) + 1;
  const wo = Math.floor((w + 2 * pad - kw) / stride) + 1;
  expectShape("planConv", "y", a.y, [n, cout, ho, wo]);
  if (a.b) expectShape("planConv", "b", a.b, [cout]);
  if (a.silu) {
    expectShape("planConv", "silu.y", a.silu.y, [n, cout, ho, wo]);
    if (!a.b) {
      throw new Error("planConv: a fused SiLU needs the conv's bias (its gradient pass hosts SiLU's)");
    }
    if (a.silu.dy && (!a.dy || !a.db)) {
      throw new Error("planConv: a fused SiLU's dy needs the conv's dy and db");
    }
    // One dispatch reads x while writing silu.y, and silu.dy while writing dy.
    if (a.silu.y.buffer === a.x.buffer || (a.silu.dy && a.silu.dy.buffer === a.dy?.buffer)) {
      throw new Error("planConv: a fused SiLU's output (gradient) shares a buffer with x (dy)");
    }
  }
  const P = ho * wo;
  return { n, cin, h, w, cout, kh, kw, ho, wo, stride, pad, P, ppad: Math.ceil(P / 4) * 4, K: cin * kh * kw };
}

/** The im2col columns a conv's GEMMs read: its own or a shared transient buffer, or x itself. */
interface Columns {
  /** undefined where x already is the column matrix */
  col?: GPUBuffer;
  xcol: Vec4Operand;
  /** the Params fields every conv dispatch shares */
  common: Fields & Geometry;
  /** the im2col dispatch that (re)builds col */
  im2col(): Dispatch;
}

function planColumns(ctx: OpContext, a: ConvArgs, g: Geometry, label: string): Columns {
  const { elem } = weightOperand(a);
  // A 1x1 stride-1 conv's f32 input already is its im2col matrix (f16 operands need the f16 copy im2col makes).
  const xIsColumns = elem === "f32" && g.kh === 1 && g.kw === 1 && g.stride === 1 && g.pad === 0 &&
    aligned(a.x, g.P);
  const colBytes = 4 * g.n * g.K * g.ppad;
  const col = xIsColumns
    ? undefined
    : a.recomputeColumns
    ? ctx.transient("conv columns", colBytes, `${label} im2col`)
    : ctx.scratch(colBytes, `${label} im2col`);
  const common = { ...g, batch: g.n, flags: 0 };
  // The register family's GEMMs read columns in panels (conv_kernels.ts COL_PANEL); the tiled family stages
  // plain rows through workgroup memory.
  const panel = ctx.kernels === "register" ? COL_PANEL : undefined;
  return {
    col,
    xcol: col
      ? { buffer: col, off4: 0, batch4: (g.K * g.ppad) / 4, panel }
      : { buffer: a.x.buffer, off4: a.x.offset / 4, batch4: batchStride(a.x) / 4 },
    common,
    im2col: () => im2col(ctx, `${label} im2col`, { ...common, rows: g.K }, a.x, col!, elem, panel),
  };
}

/** In order: db += bias_grad(dy); dW += dY . col^T; dx (=|+=) backward-data. */
function planBackward(ctx: OpContext, a: ConvArgs, g: Geometry, label: string, cols: Columns): Dispatch[] {
  if (!a.dy) throw new Error(`planConv: ${label} needs dy to plan its backward`);
  const { n, cin, h, w, cout, kh, kw, ho, wo } = g;
  const dy = a.dy;
  expectShape("planConv", "dy", dy, [n, cout, ho, wo]);
  const backward: Dispatch[] = [];
  // A fused SiLU's backward writes dy, so it runs before anything reads dy, and sums db on the way.
  const siluDy = a.silu?.dy;
  if (siluDy) {
    expectShape("planConv", "silu.dy", siluDy, [n, cout, ho, wo]);
    backward.push(siluBiasGrad(ctx, `${label} silu_bias_grad`, { x: a.y, dy: siluDy, dx: dy, db: a.db! }));
  }
  const { elem } = weightOperand(a);
  let dy4: Vec4Operand = { buffer: dy.buffer, off4: dy.offset / 4, batch4: batchStride(dy) / 4 };
  // The GEMMs read dy as vec4 rows of their operand type: a padded (and, for f16, converted) copy unless dy is.
  if (!aligned(dy, g.P) || elem !== "f32") {
    const copy = ctx.transient("conv dy padded", 4 * n * cout * g.ppad, `${label} dy padded`);
    const rows = { ...cols.common, h: ho, w: wo, kh: 1, kw: 1, stride: 1, pad: 0, rows: cout };
    backward.push(im2col(ctx, `${label} dy padded`, rows, dy, copy, elem));
    dy4 = { buffer: copy, off4: 0, batch4: (cout * g.ppad) / 4 };
  }
  if (a.db) {
    expectShape("planConv", "db", a.db, [cout]);
    if (!siluDy) backward.push(biasGrad(ctx, label, cols.common, dy, a.db));
  }
  if (a.dw) {
    expectShape("planConv", "dw", a.dw, [cout, cin, kh, kw]);
    if (cols.col && a.recomputeColumns) backward.push(cols.im2col());
    backward.push(...weightGrad(ctx, label, g, { view: dy, vec4: dy4 }, cols.xcol, a.dw, elem));
  }
  if (a.dx) {
    expectShape("planConv", "dx", a.dx, [n, cin, h, w]);
    backward.push(...backwardData(ctx, a, g, label, cols, dy, dy4, a.dx));
  }
  return backward;
}

/**
 * dx (=|+=) the conv's backward-data: a direct conv of dY on large stride-1 maps with few channels; otherwise
 * W^T . dY into the columns and col2im (or, where x is its own column matrix, straight into dx). The GEMM path
 * computes only `dxChannels` (W^T's rows of those channels, written into their slice of dx); the direct conv
 * computes every channel.
 */
function backwardData(
  ctx: OpContext,
  a: ConvArgs,
  g: Geometry,
  label: string,
  cols: Columns,
  dy: TensorView,
  dy4: Vec4Operand,
  dx: TensorView,
): Dispatch[] {
  const flags = accumulateFlag(a.accumulate);
  const { col } = cols;
  const wk = weightOperand(a);
  // The direct conv is a register-family kernel, measured against the register GEMM (the tiled family's GEMM
  // reads dY through workgroup memory, which a direct conv's gathers would forgo), and it reads dy in place
  // (f32), so f16 operands (wk.elem) take the GEMM and col2im too.
  const direct = ctx.kernels === "register" && wk.elem === "f32" && col && g.stride === 1 && g.kh === g.kw &&
    g.P >= DIRECT_MIN_PIXELS && g.cout <= DIRECT_MAX_COUT;
  if (direct && directRows(g, dy, dx)) {
    const { dispatch, wt } = transposedWeight(ctx, `${label} weight transposed`, a.w);
    return [dispatch, directBackwardData(ctx, `${label} backward_data`, g, flags, a.w, dy, dx, wt)];
  }
  if (direct) {
    return [directBackwardData(ctx, `${label} backward_data`, g, flags, a.w, dy, dx)];
  }
  const { start, count } = dxChannelRange(a, g);
  const taps = g.kh * g.kw, rows = count * taps;
  // Rows of W^T (column matrix rows) are channel-major: the channels' rows are one contiguous run.
  const part = { ...cols.common, cin: count, K: rows, rows };
  const dxPart = {
    ...dx,
    offset: dx.offset + start * g.h * g.w,
    shape: [g.n, count, g.h, g.w],
    batchStride: batchStride(dx),
  };
  const gemm = { ...part, M: rows, K: g.cout, aOff: wk.w.offset + start * taps, am: 1, ak: g.K, flags };
  const into = col
    ? { ...gemm, flags: 0, cOff: 0, ldc: g.ppad, cBatch: rows * g.ppad }
    : { ...gemm, cOff: dxPart.offset, ldc: g.P, cBatch: batchStride(dx) };
  const data = gemmNN(
    ctx,
    `${label} backward_data`,
    into,
    wk.w.buffer,
    dy4,
    col ?? dx.buffer,
    a.w.buffer,
    "conv_bwd_data",
    wk.elem,
  );
  return col ? [data, col2im(ctx, label, { ...part, flags }, col, dxPart)] : [data];
}

/** dxChannels, checked against x; all of x's channels by default. */
function dxChannelRange(a: ConvArgs, g: Geometry): { start: number; count: number } {
  const range = a.dxChannels ?? { start: 0, count: g.cin };
  if (!(range.count >= 1 && range.start >= 0 && range.start + range.count <= g.cin)) {
    throw new Error(`planConv: dxChannels ${JSON.stringify(range)} are not within x's ${g.cin} channels`);
  }
  return range;
}

/** Items [i0, i0 + count) of a batch-first view. */
function batchSlice(v: TensorView, i0: number, count: number): TensorView {
  const bs = batchStride(v);
  return {
    buffer: v.buffer,
    offset: v.offset + i0 * bs,
    shape: [count, ...v.shape.slice(1)],
    batchStride: bs,
  };
}

/** The conv planned once per slice of `slice` images: weight and bias gradients add up across slices anyway. */
function planInBatchSlices(ctx: OpContext, a: ConvArgs, slice: number): OpPlan {
  const plan: OpPlan = { forward: [], backward: [] };
  for (let i0 = 0; i0 < a.x.shape[0]; i0 += slice) {
    const count = Math.min(slice, a.x.shape[0] - i0);
    const part = (v: TensorView | undefined) => v && batchSlice(v, i0, count);
    const silu = a.silu && { y: part(a.silu.y)!, dy: part(a.silu.dy) };
    const sub = planConv(ctx, { ...a, x: part(a.x)!, y: part(a.y)!, dy: part(a.dy), dx: part(a.dx), silu });
    plan.forward.push(...sub.forward);
    plan.backward.push(...sub.backward);
  }
  return plan;
}
