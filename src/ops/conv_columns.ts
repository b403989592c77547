/**
 * The column transforms of planConv's GEMMs (wgsl/ops/conv_columns.wgsl): im2col (input taps into the column
 * matrix, or dy's rows padded to a multiple of 4) and col2im (the backward-data GEMM's column gradients added
 * back onto dx). Their divisors are pipeline constants, so each conv shape compiles its own pipelines.
 * @module
 */
import { bindBuffers } from "../gpu/buffers.ts";
import { MAX_WORKGROUPS_PER_DIMENSION } from "../gpu/device.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import type { ElemType } from "../gpu/wgsl.ts";
import { batchStride, groups } from "./context.ts";
import type { Geometry } from "./conv_kernels.ts";
import type { Dispatch, OpContext, TensorView } from "./types.ts";

const FILE = "ops/conv_columns.wgsl";
/** Lanes per im2col workgroup, at most. */
const WG = 64;
/** vec4s of columns each im2col invocation writes (IM2COL_V). */
const IM2COL_V = 4;
/** Rows per im2col_panels workgroup: few, so that the rows clamped past K (108 for the stem) stay a small share. */
const PANEL_ROWS = 16;
/** Lanes per im2col_rows workgroup, each filling one (input channel, ky) pair's rows of one panel. */
const ROWS_WG = 16;
/** Input floats im2col_rows holds per pixel quad (its `window`). */
const WINDOW_FLOATS = 16;
/** col2im runs over (x, y) pixel tiles of this shape. */
const COL2IM_SHAPE = { WG_X: 16, WG_Y: 4 };
/** Lanes per col2im_k3s2 and col2im_k3s1 workgroup. */
const K3S2_WG = 64;

const PARAMS = uniformLayout(
  FILE,
  "Params",
  u32Fields(
    [
      ...["h", "w", "ho", "stride", "pad", "ppad", "count", "flags"],
      ...["srcOff", "srcBS", "dstOff", "dstBS"],
    ] as const,
  ),
);

/** Col rows n * rows + k (rows = g.K, or dy's channels for a 1x1 "geometry" that pads dy): the taps of `src`,
 * each image's matrix in panels of `panel` vec4 columns (im2col_panels, wgsl/ops/conv_panels.wgsl), or plain
 * rows (0). */
export function im2col(
  ctx: OpContext,
  label: string,
  g: Geometry & { rows: number },
  src: TensorView,
  dst: GPUBuffer,
  elem: ElemType,
  panel = 0,
): Dispatch {
  if (panel && quadRows(g, src)) return im2colRows(ctx, label, g, src, dst, elem, panel);
  if (panel) return im2colPanels(ctx, label, g, src, dst, elem, panel);
  const rows = g.n * g.rows;
  const chunks = Math.ceil(g.ppad / 4 / IM2COL_V);
  const WG_X = Math.min(WG, 2 ** Math.ceil(Math.log2(chunks)));
  // Rows per workgroup so that each does about WG lanes' worth of row pieces.
  const IM2COL_ROWS = Math.max(1, Math.floor(WG / WG_X));
  const zGroups = Math.ceil(rows / IM2COL_ROWS);
  if (zGroups > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new Error(`planConv: ${label} has ${rows} im2col rows, too many`);
  }
  const pipeline = ctx.programs.get(FILE, "im2col", {
    WG_X,
    IM2COL_V,
    IM2COL_ROWS,
    ROWS: g.rows,
    KH: g.kh,
    KW: g.kw,
    WO: g.wo,
  }, elem);
  const u = im2colUniform(ctx, label, g, src, rows);
  return {
    label,
    pipeline,
    bindGroup: bindBuffers(ctx.device, pipeline, { 0: src.buffer, 2: u, 3: dst }, label),
    workgroups: [groups(chunks, WG_X), 1, zGroups],
    bytes: 8 * rows * g.ppad,
    opClass: "conv_im2col",
  };
}

function im2colUniform(ctx: OpContext, label: string, g: Geometry, src: TensorView, rows: number): GPUBuffer {
  return ctx.uniform(
    PARAMS.pack({
      h: g.h,
      w: g.w,
      ho: g.ho,
      stride: g.stride,
      pad: g.pad,
      ppad: g.ppad,
      count: rows,
      srcOff: src.offset,
      srcBS: batchStride(src),
    }, label),
    label,
  );
}

/** Whether im2col_rows can build these columns: output rows of whole pixel quads, input rows and planes of whole
 * vec4s, and a quad's input span within its window. */
function quadRows(g: Geometry, src: TensorView): boolean {
  return g.wo % 4 === 0 && g.w % 4 === 0 && src.offset % 4 === 0 && batchStride(src) % 4 === 0 &&
    window(g).floats <= WINDOW_FLOATS;
}

/** im2col_rows' window: where a quad's first tap lies in it (the padding rounded up to a vec4, less the padding)
 * and how many floats it spans. */
function window(g: Geometry): { off: number; floats: number } {
  const off = Math.ceil(g.pad / 4) * 4 - g.pad;
  return { off, floats: Math.ceil((off + 3 * g.stride + g.kw) / 4) * 4 };
}

/** im2col into panels from whole input vec4s: one invocation per ((channel, ky) pair, panel, image). Measured on
 * lavapipe against im2col_panels (YOLOv5n 320, batch 8, CPU-ms per step, dispatches alternating): all im2cols
 * 209 -> 152, the stem (k6 s2) 65.8 -> 47.4, 16->32 k3 s2 at 160 px 22.9 -> 17.3, 32->32 k3 at 40 px 11.6 ->
 * 7.6; what remains is mostly the stores, which lavapipe scatters lane by lane either way. */
function im2colRows(
  ctx: OpContext,
  label: string,
  g: Geometry & { rows: number },
  src: TensorView,
  dst: GPUBuffer,
  elem: ElemType,
  panel: number,
): Dispatch {
  const { off, floats } = window(g);
  const pipeline = ctx.programs.get(FILE, "im2col_rows", {
    WG_X: ROWS_WG,
    ROWS: g.rows,
    KH: g.kh,
    KW: g.kw,
    WO: g.wo,
    STRIDE: g.stride,
    PAD: g.pad,
    PANEL: panel,
    WINDOW_V: floats / 4,
    WINDOW_OFF: off,
  }, elem);
  const u = im2colUniform(ctx, label, g, src, g.n * g.rows);
  const lanes = Math.ceil(g.ppad / 4 / panel) * (g.rows / g.kw);
  return {
    label,
    pipeline,
    bindGroup: bindBuffers(ctx.device, pipeline, { 2: u, 3: dst, 4: src.buffer }, label),
    workgroups: [groups(lanes, ROWS_WG), 1, g.n],
    bytes: 8 * g.n * g.rows * g.ppad,
    opClass: "conv_im2col",
  };
}

/** im2col into panels: one invocation per (row, panel, image), PANEL_ROWS rows per workgroup. */
function im2colPanels(
  ctx: OpContext,
  label: string,
  g: Geometry & { rows: number },
  src: TensorView,
  dst: GPUBuffer,
  elem: ElemType,
  panel: number,
): Dispatch {
  const pipeline = ctx.programs.get(FILE, "im2col_panels", {
    WG_X: PANEL_ROWS,
    ROWS: g.rows,
    KH: g.kh,
    KW: g.kw,
    WO: g.wo,
    PANEL: panel,
  }, elem);
  const u = im2colUniform(ctx, label, g, src, g.n * g.rows);
  return {
    label,
    pipeline,
    bindGroup: bindBuffers(ctx.device, pipeline, { 0: src.buffer, 2: u, 3: dst }, label),
    workgroups: [groups(g.rows, PANEL_ROWS), groups(g.ppad / 4, panel), g.n],
    bytes: 8 * g.n * g.rows * g.ppad,
    opClass: "conv_im2col",
  };
}

/** Whether col2im_k3s1 can add these columns: a k3 s1 p1 conv on maps whose rows are whole vec4s, dx
 * 4-aligned. Measured on lavapipe against col2im (YOLOv5n 320, batch 8, CPU-ms per step, dispatches
 * alternating): 64->64 at 20x20 5.3 -> 2.8 (five of them); all col2ims 70 -> 58. */
function rowsK3S1(g: Geometry, dx: TensorView): boolean {
  return g.kh === 3 && g.kw === 3 && g.stride === 1 && g.pad === 1 && g.wo === g.w && g.w % 4 === 0 &&
    dx.offset % 4 === 0 && batchStride(dx) % 4 === 0;
}

/** Whether col2im_k3s2 can add these columns: a k3 s2 p1 conv on maps of even height and of width 2 * Wo, Wo a
 * multiple of 4, dx 4-aligned. Measured on lavapipe against col2im (YOLOv5n 320, batch 8, CPU-ms per step,
 * dispatches alternating): 16->32 at 160 px 43.3 -> 9.7, 32->64 at 80 px 21.5 -> 5.4, 64->128 at 40 px 12.7 ->
 * 3.3; all col2ims 137 -> 69. */
function evenK3S2(g: Geometry, dx: TensorView): boolean {
  return g.kh === 3 && g.kw === 3 && g.stride === 2 && g.pad === 1 && g.h === 2 * g.ho && g.w === 2 * g.wo &&
    g.wo % 4 === 0 && dx.offset % 4 === 0 && batchStride(dx) % 4 === 0;
}

/** dx (=|+=, flags 2) the column gradients `col` (g.K rows per image) summed onto the input pixels they tap. */
export function col2im(
  ctx: OpContext,
  label: string,
  g: Geometry & { flags: number },
  col: GPUBuffer,
  dx: TensorView,
): Dispatch {
  const k3s2 = evenK3S2(g, dx);
  const k3s1 = rowsK3S1(g, dx);
  const runs = k3s2 ? "col2im_k3s2" : k3s1 ? "col2im_k3s1" : undefined;
  const pipeline = runs
    ? ctx.programs.get(FILE, runs, { WG_X: K3S2_WG, ROWS: g.K, WO: g.wo, CIN: g.cin })
    : ctx.programs.get(FILE, "col2im", {
      ...COL2IM_SHAPE,
      ROWS: g.K,
      KH: g.kh,
      KW: g.kw,
      WO: g.wo,
      CIN: g.cin,
      STRIDE: g.stride,
    });
  const planes = g.n * g.cin;
  if (planes > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new Error(`planConv: ${label} has ${planes} input planes, at most ${MAX_WORKGROUPS_PER_DIMENSION}`);
  }
  const u = ctx.uniform(
    PARAMS.pack({
      h: g.h,
      w: g.w,
      ho: g.ho,
      stride: g.stride,
      pad: g.pad,
      ppad: g.ppad,
      flags: g.flags,
      dstOff: dx.offset,
      dstBS: batchStride(dx),
    }, `${label} col2im`),
    `${label} col2im`,
  );
  return {
    label: `${label} col2im`,
    pipeline,
    bindGroup: bindBuffers(
      ctx.device,
      pipeline,
      runs ? { 0: col, 4: col, 5: dx.buffer, 2: u } : { 0: col, 1: dx.buffer, 2: u },
      `${label} col2im`,
    ),
    workgroups: runs
      // one invocation per run of dx pixels: 8 of a pair of rows (k3 s2), 4 of one row (k3 s1)
      ? [groups(g.ho * (g.wo / 4), K3S2_WG), 1, planes]
      : [groups(g.w, COL2IM_SHAPE.WG_X), groups(g.h, COL2IM_SHAPE.WG_Y), planes],
    bytes: 4 * (2 * planes * g.h * g.w + g.n * g.K * g.P),
    opClass: "conv_col2im",
  };
}
