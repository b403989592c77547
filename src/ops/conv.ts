import { batchStride, bindSparse, expectShape, groups, uniformU32 } from "./context.ts";
import type { Dispatch, OpContext, OpPlan, TensorView } from "./types.ts";

const FILE = "ops/conv.wgsl";
/** Invocations per workgroup of every conv entry point (a power of two: bias_grad reduces by halving). */
const WG = 64;
/** Rows and columns of C each GEMM invocation owns (the 8x8 Tile in wgsl/ops/conv.wgsl). */
const TILE = 8;
const MAX_GROUPS = 65535;
/** col2im runs over (x, y) pixel tiles of this shape. */
const COL2IM_SHAPE = { WG_X: 16, WG_Y: 4 };
/** The weight-gradient GEMM splits its pixel reduction until about this many invocations run: lavapipe's 2 cores
 * need few, a real GPU thousands; each split costs partial-sum memory and reduce work. */
const SPLIT_TARGET_INVOCATIONS = 4096;
/** Fewest vec4 pixel columns (4 pixels each) one split reduces over, keeping partial sums a small share. */
const MIN_CHUNK4 = 16;

export interface ConvArgs {
  /** input [N, Cin, H, W] */
  x: TensorView;
  /** weight [Cout, Cin, kh, kw] (usually a view into the flat params buffer) */
  w: TensorView;
  /** bias [Cout] */
  b?: TensorView;
  /** output [N, Cout, Ho, Wo], overwritten by forward */
  y: TensorView;
  /** gradient of y; required when any of dx, dw, db is given */
  dy?: TensorView;
  /** gradient of x: overwritten, or added to when `accumulate` (x fans out to several consumers) */
  dx?: TensorView;
  /** weight gradient: always ADDED to (gradients of successive batches sum until the optimizer zeroes them) */
  dw?: TensorView;
  /** bias gradient: always ADDED to */
  db?: TensorView;
  stride: number;
  pad: number;
  dilation?: number;
  groups?: number;
  accumulate?: boolean;
  /** largest scratch buffer one dispatch may bind; defaults to the device's maxStorageBufferBindingSize. Batches
   * whose im2col matrix is larger are planned in batch slices, each with its own scratch. */
  maxScratchBytes?: number;
}

interface Geometry {
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
interface Vec4Operand {
  buffer: GPUBuffer;
  off4: number;
  batch4: number;
}

const aligned = (v: TensorView, P: number) => P % 4 === 0 && v.offset % 4 === 0 && batchStride(v) % 4 === 0;

/**
 * Plans a groups-1 convolution. Forward: im2col (skipped for aligned 1x1 stride-1 convs) + GEMM with fused bias.
 * Backward, in order: db += bias_grad(dy); dW += split GEMM dY . col^T + reduce; dx (=|+=) col2im(W^T . dY).
 * The im2col scratch holds the forward's columns until backward-weight has read them, then backward-data reuses
 * it for dcol, so each conv owns one scratch of N * Cin*kh*kw * ceil4(Ho*Wo) floats.
 */
export function planConv(ctx: OpContext, a: ConvArgs): OpPlan {
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
  const P = ho * wo;
  const g: Geometry = {
    n,
    cin,
    h,
    w,
    cout,
    kh,
    kw,
    ho,
    wo,
    stride,
    pad,
    P,
    ppad: Math.ceil(P / 4) * 4,
    K: cin * kh * kw,
  };
  const label = `conv ${cin}->${cout} k${kh}x${kw} s${stride} ${h}x${w}`;
  const perItem = 4 * Math.max(g.K, cout) * g.ppad;
  const limit = a.maxScratchBytes ?? ctx.device.limits.maxStorageBufferBindingSize;
  if (n * perItem > limit) {
    const slice = Math.floor(limit / perItem);
    if (slice < 1) {
      throw new Error(`planConv: ${label} needs ${perItem} bytes of im2col per image, limit ${limit}`);
    }
    return planInBatchSlices(ctx, a, slice);
  }
  const direct = kh === 1 && kw === 1 && stride === 1 && pad === 0 && aligned(a.x, P);
  const col = direct ? undefined : ctx.scratch(4 * n * g.K * g.ppad, `${label} im2col`);
  const xcol: Vec4Operand = col
    ? { buffer: col, off4: 0, batch4: (g.K * g.ppad) / 4 }
    : { buffer: a.x.buffer, off4: a.x.offset / 4, batch4: batchStride(a.x) / 4 };
  const common = { ...g, batch: n, flags: 0 };

  const forward: Dispatch[] = [];
  if (col) forward.push(im2col(ctx, `${label} im2col`, { ...common, rows: g.K }, a.x, col));
  forward.push(gemmNN(
    ctx,
    `${label} forward`,
    {
      ...common,
      flags: a.b ? 1 : 0,
      M: cout,
      K: g.K,
      aOff: a.w.offset,
      am: g.K,
      ak: 1,
      biasOff: a.b?.offset ?? 0,
      cOff: a.y.offset,
      ldc: P,
      cBatch: batchStride(a.y),
    },
    a.w.buffer,
    xcol,
    a.y.buffer,
    (a.b ?? a.w).buffer,
    "conv_fwd",
  ));

  const backward: Dispatch[] = [];
  if (!a.dx && !a.dw && !a.db) return { forward, backward };
  if (!a.dy) throw new Error(`planConv: ${label} needs dy to plan its backward`);
  const dy = a.dy;
  expectShape("planConv", "dy", dy, [n, cout, ho, wo]);
  let dy4: Vec4Operand = { buffer: dy.buffer, off4: dy.offset / 4, batch4: batchStride(dy) / 4 };
  if (!aligned(dy, P)) {
    const copy = ctx.scratch(4 * n * cout * g.ppad, `${label} dy padded`);
    const rows = { ...common, cin: cout, h: ho, w: wo, kh: 1, kw: 1, stride: 1, pad: 0, rows: cout };
    backward.push(im2col(ctx, `${label} dy padded`, rows, dy, copy));
    dy4 = { buffer: copy, off4: 0, batch4: (cout * g.ppad) / 4 };
  }
  if (a.db) {
    expectShape("planConv", "db", a.db, [cout]);
    backward.push(biasGrad(ctx, label, common, dy, a.db));
  }
  if (a.dw) {
    expectShape("planConv", "dw", a.dw, [cout, cin, kh, kw]);
    backward.push(...weightGrad(ctx, label, g, dy4, xcol, a.dw));
  }
  if (a.dx) {
    expectShape("planConv", "dx", a.dx, [n, cin, h, w]);
    const flags = a.accumulate ? 2 : 0;
    const gemm = { ...common, M: g.K, K: cout, aOff: a.w.offset, am: 1, ak: g.K, flags };
    const into = col
      ? { ...gemm, flags: 0, cOff: 0, ldc: g.ppad, cBatch: g.K * g.ppad }
      : { ...gemm, cOff: a.dx.offset, ldc: P, cBatch: batchStride(a.dx) };
    backward.push(
      gemmNN(
        ctx,
        `${label} backward_data`,
        into,
        a.w.buffer,
        dy4,
        col ?? a.dx.buffer,
        a.w.buffer,
        "conv_bwd_data",
      ),
    );
    if (col) backward.push(col2im(ctx, label, { ...common, flags, rows: g.K }, col, a.dx));
  }
  return { forward, backward };
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
    const sub = planConv(ctx, { ...a, x: part(a.x)!, y: part(a.y)!, dy: part(a.dy), dx: part(a.dx) });
    plan.forward.push(...sub.forward);
    plan.backward.push(...sub.backward);
  }
  return plan;
}

type Fields = Partial<Record<(typeof FIELD_ORDER)[number], number>>;

/** Workgroup shape for a GEMM with `mBlocks` x `nBlocks` 8x8 tiles: up to 64 invocations, powers of two, rows
 * first (capped at 8) so narrow layers fill their workgroups. */
function gemmShape(mBlocks: number, nBlocks: number): { WG_X: number; WG_Y: number } {
  const pow2 = (v: number) => 2 ** Math.ceil(Math.log2(Math.max(1, v)));
  const WG_Y = Math.min(8, pow2(mBlocks));
  return { WG_X: Math.min(WG / WG_Y, pow2(nBlocks)), WG_Y };
}

/** gemm_nn's A_MODE: vec4 loads of A along k (row-major, 1) or along m (transposed, 2) where 4-aligned. */
function aMode(f: Fields): number {
  const aligned4 = (...v: (number | undefined)[]) => v.every((x) => (x ?? 0) % 4 === 0);
  if (f.ak === 1 && aligned4(f.aOff, f.am, f.K, f.aBatch)) return 1;
  if (f.am === 1 && aligned4(f.aOff, f.ak, f.aBatch)) return 2;
  return 0;
}

function uniform(ctx: OpContext, f: Fields, label: string): GPUBuffer {
  return uniformU32(ctx, FIELD_ORDER.map((k) => f[k] ?? 0), label);
}

/** A 1-D grid over `count` invocations, folded into y where it exceeds the per-dimension workgroup limit. */
function grid(count: number): { workgroups: [number, number, number]; pitch: number } {
  const total = groups(count, WG);
  const x = Math.min(total, MAX_GROUPS);
  return { workgroups: [x, Math.ceil(total / x), 1], pitch: x * WG };
}

function gemmNN(
  ctx: OpContext,
  label: string,
  f: Fields & { M: number; K: number; P: number; ppad: number; n: number },
  aBuf: GPUBuffer,
  b: Vec4Operand,
  cBuf: GPUBuffer,
  biasBuf: GPUBuffer,
  opClass: string,
): Dispatch {
  const N4 = f.ppad / 4;
  const shape = gemmShape(Math.ceil(f.M / TILE), Math.ceil(N4 / 2));
  const vec4 = [f.cOff ?? 0, f.cBatch ?? 0, f.ldc ?? 0].every((v) => v % 4 === 0);
  const A_MODE = aMode(f);
  const pipeline = ctx.programs.get(FILE, vec4 ? "gemm_nn_vec4" : "gemm_nn", { ...shape, A_MODE });
  const u = uniform(ctx, { ...f, N: f.P, N4, bOff4: b.off4, ldb4: N4, bBatch4: b.batch4 }, label);
  return {
    label,
    pipeline,
    bindGroup: bindSparse(ctx.device, pipeline, {
      2: aBuf,
      3: b.buffer,
      4: aBuf,
      [vec4 ? 9 : 5]: cBuf,
      6: biasBuf,
      7: u,
    }, label),
    workgroups: [groups(N4, 2 * shape.WG_X), groups(f.M, TILE * shape.WG_Y), f.n],
    flops: 2 * f.n * f.M * f.K * f.P,
    bytes: 4 * (f.M * f.K + f.n * (f.K + f.M) * f.P),
    opClass,
  };
}

function weightGrad(
  ctx: OpContext,
  label: string,
  g: Geometry,
  dy4: Vec4Operand,
  xcol: Vec4Operand,
  dw: TensorView,
): Dispatch[] {
  const r4 = g.ppad / 4;
  const invocations = Math.ceil(g.cout / TILE) * Math.ceil(g.K / TILE) * g.n;
  const splits = Math.max(
    1,
    Math.min(Math.ceil(SPLIT_TARGET_INVOCATIONS / invocations), Math.ceil(r4 / MIN_CHUNK4)),
  );
  const chunk4 = Math.ceil(r4 / splits);
  const nsplit = g.n * splits;
  const count = g.cout * g.K;
  const part = ctx.scratch(4 * nsplit * count, `${label} dw partials`);
  const shape = gemmShape(Math.ceil(g.cout / TILE), Math.ceil(g.K / TILE));
  const nt = ctx.programs.get(FILE, "gemm_nt", shape);
  const ntU = uniform(ctx, {
    M: g.cout,
    N: g.K,
    K: r4,
    aOff: dy4.off4,
    am: r4,
    aBatch: dy4.batch4,
    bOff4: xcol.off4,
    ldb4: r4,
    bBatch4: xcol.batch4,
    splits,
    chunk4,
  }, `${label} backward_weight`);
  const red = ctx.programs.get(FILE, "reduce", { WG });
  const { workgroups, pitch } = grid(count);
  const redU = uniform(ctx, { count, pitch, nsplit, dstOff: dw.offset }, `${label} reduce dw`);
  return [{
    label: `${label} backward_weight`,
    pipeline: nt,
    bindGroup: bindSparse(
      ctx.device,
      nt,
      { 3: xcol.buffer, 4: dy4.buffer, 5: part, 7: ntU },
      `${label} backward_weight`,
    ),
    workgroups: [groups(g.K, TILE * shape.WG_X), groups(g.cout, TILE * shape.WG_Y), nsplit],
    flops: 2 * g.n * g.cout * g.K * g.P,
    bytes: 4 * (g.n * (g.K + g.cout) * g.ppad + nsplit * count),
    opClass: "conv_bwd_weight",
  }, {
    label: `${label} reduce dw`,
    pipeline: red,
    bindGroup: bindSparse(ctx.device, red, { 0: part, 1: dw.buffer, 7: redU }, `${label} reduce dw`),
    workgroups,
    flops: nsplit * count,
    bytes: 4 * (nsplit + 2) * count,
    opClass: "conv_bwd_weight",
  }];
}

function im2col(
  ctx: OpContext,
  label: string,
  f: Fields & Geometry & { rows: number },
  src: TensorView,
  dst: GPUBuffer,
): Dispatch {
  const pipeline = ctx.programs.get(FILE, "im2col", { WG });
  const rows = f.n * f.rows;
  if (rows > MAX_GROUPS) throw new Error(`planConv: ${label} has ${rows} im2col rows, at most ${MAX_GROUPS}`);
  const u = uniform(ctx, { ...f, srcOff: src.offset, srcBS: batchStride(src) }, label);
  return {
    label,
    pipeline,
    bindGroup: bindSparse(ctx.device, pipeline, { 0: src.buffer, 7: u, 8: dst }, label),
    workgroups: [groups(f.ppad / 4, WG), 1, rows],
    bytes: 8 * rows * f.ppad,
    opClass: "conv_im2col",
  };
}

function col2im(
  ctx: OpContext,
  label: string,
  f: Fields & Geometry & { rows: number },
  col: GPUBuffer,
  dx: TensorView,
): Dispatch {
  const pipeline = ctx.programs.get(FILE, "col2im", COL2IM_SHAPE);
  const planes = f.n * f.cin;
  if (planes > MAX_GROUPS) {
    throw new Error(`planConv: ${label} has ${planes} input planes, at most ${MAX_GROUPS}`);
  }
  const u = uniform(ctx, { ...f, dstOff: dx.offset, dstBS: batchStride(dx) }, `${label} col2im`);
  return {
    label: `${label} col2im`,
    pipeline,
    bindGroup: bindSparse(ctx.device, pipeline, { 0: col, 1: dx.buffer, 7: u }, `${label} col2im`),
    workgroups: [groups(f.w, COL2IM_SHAPE.WG_X), groups(f.h, COL2IM_SHAPE.WG_Y), planes],
    bytes: 4 * (2 * planes * f.h * f.w + f.n * f.K * f.P),
    opClass: "conv_col2im",
  };
}

function biasGrad(
  ctx: OpContext,
  label: string,
  f: Fields & Geometry,
  dy: TensorView,
  db: TensorView,
): Dispatch {
  const pipeline = ctx.programs.get(FILE, "bias_grad", { WG });
  const u = uniform(
    ctx,
    { ...f, srcOff: dy.offset, srcBS: batchStride(dy), dstOff: db.offset },
    `${label} bias_grad`,
  );
  return {
    label: `${label} bias_grad`,
    pipeline,
    bindGroup: bindSparse(ctx.device, pipeline, { 0: dy.buffer, 1: db.buffer, 7: u }, `${label} bias_grad`),
    workgroups: [f.cout, 1, 1],
    flops: f.n * f.cout * f.P,
    bytes: 4 * f.n * f.cout * f.P,
    opClass: "conv_bwd_weight",
  };
}

/** Word order of the `Params` uniform struct in wgsl/ops/conv.wgsl. */
const FIELD_ORDER = [
  ...["batch", "cin", "h", "w", "cout", "ho", "wo", "kh", "kw", "stride", "pad", "flags"],
  ...["srcOff", "srcBS", "dstOff", "dstBS", "rows", "ppad", "count", "pitch", "M", "N", "N4", "K"],
  ...["aOff", "am", "ak", "aBatch", "bOff4", "ldb4", "bBatch4", "biasOff", "cOff", "ldc", "cBatch", "splits"],
  ...["chunk4", "nsplit", "_pad0", "_pad1"],
] as const;
