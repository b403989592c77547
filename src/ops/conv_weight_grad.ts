/**
 * The weight gradient of a conv (planConv's backward-weight): dW += the sum over batch items and pixels of
 * dY . col^T, as split partial sums that a reduce adds into dW. Three GEMMs compute the partials: the tiled
 * family's gemm_nt; in the register family gemm_nt (or gemm_nt_lanes for few channels on large maps), or for
 * many output channels gemm_nn on transposed operands (wgsl/ops/conv_dw_nn.wgsl says why).
 * @module
 */
import { bindBuffers } from "../gpu/buffers.ts";
import { MAX_WORKGROUPS_PER_DIMENSION } from "../gpu/device.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import type { ElemType } from "../gpu/wgsl.ts";
import { batchStride, grid1d, groups } from "./context.ts";
import {
  aligned,
  FILE,
  gemmNN,
  gemmShape,
  type Geometry,
  TILE,
  type TransposedWeight,
  uniform,
  type Vec4Operand,
  WG,
} from "./conv_kernels.ts";
import { tiledGemmNT, tiledSplits } from "./gemm_tiled.ts";
import type { Dispatch, OpContext, TensorView } from "./types.ts";

/** The weight-gradient GEMM splits its pixel reduction until about this many invocations run: lavapipe's 2 cores
 * need few, a real GPU thousands; each split costs partial-sum memory and reduce work. */
const SPLIT_TARGET_INVOCATIONS = 4096;
/** The weight-gradient GEMM lets the 8 lanes of a workgroup share one tile (gemm_nt_lanes) for layers with at
 * least this many output pixels per image and at most LANES_MAX_COUT output channels. Measured on lavapipe
 * (YOLOv5n 320, batch 8, alternating runs): 16->32 k3 s2 at 160 px 122/107 -> 44/75 ms, 16->16 k3 at 80 px
 * 61/68 -> 40/37 ms, 32->32 k3 at 40 px 50/49 -> 38/38 ms; with 64+ channels or 20x20 maps it was as fast or
 * slower (128->256 k3 s2 at 20 px 87/63 -> 131/118 ms). */
const LANES_MIN_PIXELS = 1600;
const LANES_MAX_COUT = 32;
/** Fewest vec4 pixel columns (4 pixels each) one split reduces over, keeping partial sums a small share. */
const MIN_CHUNK4 = 16;
/** Register-family weight gradients with at least this many output channels run gemm_nn on transposed operands
 * (wgsl/ops/conv_dw_nn.wgsl has the measurements). */
const NN_MIN_COUT = 64;
/** Fewest workgroups the transposed weight gradient's gemm_nn keeps when it sums several images' products into
 * one partial (fewer partials to write and reduce, less parallel work). Measured on lavapipe (YOLOv5n 320, batch
 * 8, CPU-ms per step, dispatches alternating): weight gradients 1057 -> 1040, their reduces 68 -> 52 (128->256
 * k3 s2 at 20x20 input 8.2 -> 3.0); with 32 the reduces gained as much but 64->64 k3 at 20x20 lost 7% to the
 * halved parallelism. */
const SUM_MIN_WORKGROUPS = 64;
const NN_FILE = "ops/conv_dw_nn.wgsl";
const NN_PARAMS = uniformLayout(
  NN_FILE,
  "Params",
  u32Fields(
    [
      ...["P", "ppad", "cout", "cpad", "srcOff", "srcBS", "K", "_pad"],
      ...["dstOff", "nsplit", "_p0", "_p1"],
    ] as const,
  ),
);

/** dW += sum over batch items and pixels of dY . col^T: split partial sums (gemm_nt of the context's kernel
 * family, or gemm_nn on transposed operands), then a reduce adds them into dw. `dy` is dY's view (f32) and the
 * vec4 rows the GEMMs read (dY itself or its padded, possibly f16 copy). */
export function weightGrad(
  ctx: OpContext,
  label: string,
  g: Geometry,
  dy: { view: TensorView; vec4: Vec4Operand },
  xcol: Vec4Operand,
  dw: TensorView,
  elem: ElemType,
): Dispatch[] {
  if (ctx.kernels === "register" && g.cout >= NN_MIN_COUT) {
    return transposedWeightGrad(ctx, label, g, dy.view, xcol, dw, elem);
  }
  const dy4 = dy.vec4;
  const count = g.cout * g.K;
  const partials = ctx.kernels === "tiled"
    ? tiledPartials(ctx, `${label} backward_weight`, g, dy4, xcol, elem)
    : registerPartials(ctx, `${label} backward_weight`, g, dy4, xcol, elem);
  const { nsplit } = partials;
  const part = ctx.transient("conv dw partials", 4 * nsplit * count, `${label} dw partials`);
  const red = ctx.programs.get(FILE, "reduce", { WG });
  const { workgroups, pitch } = grid1d(count, WG);
  const redU = uniform(ctx, { count, pitch, nsplit, dstOff: dw.offset }, `${label} reduce dw`);
  return [{
    ...partials.dispatch(part),
    flops: 2 * g.n * g.cout * g.K * g.P,
    bytes: 4 * (g.n * (g.K + g.cout) * g.ppad + nsplit * count),
    opClass: "conv_bwd_weight",
  }, {
    label: `${label} reduce dw`,
    pipeline: red,
    bindGroup: bindBuffers(ctx.device, red, { 0: part, 1: dw.buffer, 7: redU }, `${label} reduce dw`),
    workgroups,
    flops: nsplit * count,
    bytes: 4 * (nsplit + 2) * count,
    opClass: "conv_bwd_weight",
  }];
}

/** The weight gradient's split partial sums: how many, and the dispatch that writes them into `part`. */
interface Partials {
  nsplit: number;
  dispatch(part: GPUBuffer): Pick<Dispatch, "label" | "pipeline" | "bindGroup" | "workgroups">;
}

function tiledPartials(
  ctx: OpContext,
  label: string,
  g: Geometry,
  dy4: Vec4Operand,
  xcol: Vec4Operand,
  elem: ElemType,
): Partials {
  const f = {
    M: g.cout,
    N: g.K,
    r4: g.ppad / 4,
    n: g.n,
    aOff4: dy4.off4,
    am4: g.ppad / 4,
    aBatch4: dy4.batch4,
    bOff4: xcol.off4,
    ldb4: g.ppad / 4,
    bBatch4: xcol.batch4,
  };
  return {
    nsplit: tiledSplits(ctx.device, f).nsplit,
    dispatch: (part) => tiledGemmNT(ctx, label, f, { a: dy4.buffer, b: xcol.buffer, part }, elem),
  };
}

function registerPartials(
  ctx: OpContext,
  label: string,
  g: Geometry,
  dy4: Vec4Operand,
  xcol: Vec4Operand,
  elem: ElemType,
): Partials {
  const r4 = g.ppad / 4;
  const lanes = g.P >= LANES_MIN_PIXELS && g.cout <= LANES_MAX_COUT;
  const invocations = Math.ceil(g.cout / TILE) * Math.ceil(g.K / TILE) * g.n * (lanes ? 8 : 1);
  const splits = Math.max(
    1,
    Math.min(Math.ceil(SPLIT_TARGET_INVOCATIONS / invocations), Math.ceil(r4 / MIN_CHUNK4)),
  );
  const chunk4 = Math.ceil(r4 / splits);
  const nsplit = g.n * splits;
  const shape = gemmShape(Math.ceil(g.cout / TILE), Math.ceil(g.K / TILE));
  const B_PANEL = xcol.panel ?? 0;
  const nt = lanes
    ? ctx.programs.get(FILE, "gemm_nt_lanes", { B_PANEL }, elem)
    : ctx.programs.get(FILE, "gemm_nt", { ...shape, B_PANEL }, elem);
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
  }, label);
  return {
    nsplit,
    dispatch: (part) => ({
      label,
      pipeline: nt,
      bindGroup: bindBuffers(ctx.device, nt, { 3: xcol.buffer, 4: dy4.buffer, 5: part, 7: ntU }, label),
      workgroups: lanes
        ? [groups(g.K, TILE), groups(g.cout, TILE), nsplit]
        : [groups(g.K, TILE * shape.WG_X), groups(g.cout, TILE * shape.WG_Y), nsplit],
    }),
  };
}

/** Invocations per workgroup of conv_dw_nn.wgsl's passes for n channels: a power of two, at most WG. */
const lanesFor = (n: number) => Math.min(WG, 2 ** Math.ceil(Math.log2(n)));

/** transpose_dy (wgsl/ops/conv_dw_nn.wgsl) of `n` matrices, with its uniform `u` already packed; transpose_dy4
 * where the source's offset, batch stride and row length are multiples of 4 (`vec4`). Measured on lavapipe
 * (YOLOv5n 320, batch 8, CPU-ms per step, dispatches alternating): all dy transposes 59 -> 52, 64->255 1x1 at
 * 40x40 16.6 -> 10.2. */
function transposeDispatch(
  ctx: OpContext,
  label: string,
  u: GPUBuffer,
  src: GPUBuffer,
  dst: GPUBuffer,
  n: number,
  cpad: number,
  ppad: number,
  elem: ElemType,
  vec4: boolean,
): Pick<Dispatch, "label" | "pipeline" | "bindGroup" | "workgroups"> {
  const WG_T = lanesFor(cpad / 4);
  const pipeline = ctx.programs.get(NN_FILE, vec4 ? "transpose_dy4" : "transpose_dy", { WG: WG_T }, elem);
  return {
    label,
    pipeline,
    bindGroup: bindBuffers(ctx.device, pipeline, { [vec4 ? 4 : 0]: src, 1: dst, 3: u }, label),
    workgroups: [groups(cpad / 4, WG_T), ppad / 4, n],
  };
}

/**
 * A conv weight [cout, cin, kh, kw] (f32) transposed to [cout][tap][ci] (taps padded to a multiple of 4 rows,
 * channels to cpad, zeros there) in a transient buffer: conv_direct_rows reads it as vec4 along the input
 * channels. transpose_dy does it, each output channel's [cin][taps] block taken as an image's [channels][pixels].
 */
export function transposedWeight(
  ctx: OpContext,
  label: string,
  w: TensorView,
): { dispatch: Dispatch; wt: TransposedWeight } {
  const [cout, cin, kh, kw] = w.shape;
  const taps = kh * kw;
  const cpad = Math.ceil(cin / 4) * 4;
  const tapRows = Math.ceil(taps / 4) * 4;
  const buffer = ctx.transient("conv weight transposed", 4 * cout * tapRows * cpad, label);
  const u = ctx.uniform(
    NN_PARAMS.pack({
      P: taps,
      ppad: tapRows,
      cout: cin,
      cpad,
      srcOff: w.offset,
      srcBS: cin * taps,
    }, label),
    label,
  );
  return {
    dispatch: {
      ...transposeDispatch(ctx, label, u, w.buffer, buffer, cout, cpad, tapRows, "f32", false),
      bytes: 4 * cout * (cin * taps + tapRows * cpad),
      opClass: "conv_bwd_data",
    },
    wt: { buffer, cpad, tapRows },
  };
}

/** The transposed weight gradient's gemm_nn sums the products of this many images into each partial dW^T: the
 * most that divide the batch and leave at least SUM_MIN_WORKGROUPS workgroups. */
function imagesPerPartial(g: Geometry, cpad: number): number {
  const shape = gemmShape(Math.ceil(g.K / TILE), Math.ceil(cpad / 8));
  const perImage = groups(cpad / 4, 2 * shape.WG_X) * groups(g.K, TILE * shape.WG_Y);
  let z = g.n;
  while (z > 1 && (g.n % z !== 0 || (perImage * g.n) / z < SUM_MIN_WORKGROUPS)) z--;
  return z;
}

/**
 * dW += the sum over batch items of (col . dY^T)^T: dY transposed into pixel rows of cpad channels (transient),
 * gemm_nn writes partial dW^Ts, each the sum over some images (imagesPerPartial; the reduction runs along col's
 * rows: no pixel split), and reduce_t adds them, transposed back, into dw.
 */
function transposedWeightGrad(
  ctx: OpContext,
  label: string,
  g: Geometry,
  dy: TensorView,
  xcol: Vec4Operand,
  dw: TensorView,
  elem: ElemType,
): Dispatch[] {
  const cpad = Math.ceil(g.cout / 4) * 4;
  if (Math.max(g.ppad, g.K) > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new Error(`planConv: ${label} has ${g.ppad} pixels and ${g.K} taps, too many for its grid`);
  }
  const zSum = imagesPerPartial(g, cpad);
  const partials = g.n / zSum;
  const dyT = ctx.transient("conv dy transposed", 4 * g.n * g.ppad * cpad, `${label} dy transposed`);
  const part = ctx.transient("conv dw partials", 4 * partials * g.K * cpad, `${label} dw partials`);
  const u = ctx.uniform(
    NN_PARAMS.pack({
      P: g.P,
      ppad: g.ppad,
      cout: g.cout,
      cpad,
      srcOff: dy.offset,
      srcBS: batchStride(dy),
      K: g.K,
      dstOff: dw.offset,
      nsplit: partials,
    }, label),
    `${label} dw (transposed)`,
  );
  const reduceWG = lanesFor(g.cout);
  const gemm = gemmNN(
    ctx,
    `${label} backward_weight`,
    {
      n: g.n,
      zSum,
      batch: g.n,
      P: cpad,
      ppad: cpad,
      flags: 0,
      M: g.K,
      K: g.ppad,
      aOff: xcol.off4 * 4,
      am: g.ppad,
      ak: 1,
      aBatch: xcol.batch4 * 4,
      cOff: 0,
      ldc: cpad,
      cBatch: g.K * cpad,
    },
    xcol.buffer,
    { buffer: dyT, off4: 0, batch4: (g.ppad * cpad) / 4 },
    part,
    // No bias (flags 0): the binding only needs a buffer bound read-only.
    xcol.buffer,
    "conv_bwd_weight",
    elem,
    undefined,
    xcol.panel,
  );
  const reduce = ctx.programs.get(NN_FILE, "reduce_t", { WG: reduceWG });
  const transpose = transposeDispatch(
    ctx,
    `${label} dy transposed`,
    u,
    dy.buffer,
    dyT,
    g.n,
    cpad,
    g.ppad,
    elem,
    aligned(dy, g.P),
  );
  return [{
    ...transpose,
    bytes: 4 * g.n * (g.cout * g.P + g.ppad * cpad),
    opClass: "conv_bwd_weight",
  }, {
    ...gemm,
    flops: 2 * g.n * g.cout * g.K * g.P,
    bytes: 4 * (g.n * (g.K * g.ppad + g.ppad * cpad + g.K * cpad)),
  }, {
    label: `${label} reduce dw`,
    pipeline: reduce,
    bindGroup: bindBuffers(ctx.device, reduce, { 0: part, 2: dw.buffer, 3: u }, `${label} reduce dw`),
    workgroups: [groups(g.cout, reduceWG), g.K, 1],
    flops: partials * g.cout * g.K,
    bytes: 4 * (partials + 2) * g.cout * g.K,
    opClass: "conv_bwd_weight",
  }];
}
