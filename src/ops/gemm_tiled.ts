import { bindBuffers } from "../gpu/buffers.ts";
import { MAX_WORKGROUPS_PER_DIMENSION } from "../gpu/device.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import type { ElemType } from "../gpu/wgsl.ts";
import { groups } from "./context.ts";
import type { Dispatch, OpContext } from "./types.ts";

// The `tiled` family's GEMM dispatches (wgsl/ops/gemm_tiled.wgsl) for conv_kernels.ts: forward and
// backward-data (gemm_nn) and the weight gradient's split partial sums (gemm_nt). `elem` is the operands'
// storage type (f16 under amp: the module is compiled with that prelude, src/gpu/programs.ts); sums are f32.
const FILE = "ops/gemm_tiled.wgsl";

/** A workgroup's block of C (BM x BN), its k step (BK) and each invocation's share (TM x TN): the override
 * constants of wgsl/ops/gemm_tiled.wgsl. */
export interface TileShape {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

/** Untuned on real GPUs so far (no GPU here; src/bench/conv_shapes.ts compares the families where there is one):
 * textbook shapes of 256 invocations with 16 KiB of workgroup memory or less, chosen by the number of rows.
 * 64x64 with 4x4 per invocation is the general case. Layers with few rows (YOLOv5's 16- and 32-channel convs,
 * on the largest maps) would leave half to three quarters of a 64-row block computing zeros, so they take
 * 32x128. Many rows (deep layers; backward-data, whose rows are Cin*kh*kw) take 128x64 with 8x4 per
 * invocation: twice the FMAs per workgroup-memory read, and BK 8 to stay within 16 KiB. */
const WIDE: TileShape = { BM: 32, BN: 128, BK: 8, TM: 4, TN: 4 };
const SQUARE: TileShape = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
const TALL: TileShape = { BM: 128, BN: 64, BK: 8, TM: 8, TN: 4 };
/** Row counts from which the square and the tall shape are used. */
const SQUARE_MIN_ROWS = 48;
const TALL_MIN_ROWS = 256;
/** vec4s of each operand one invocation loads per step (MAX_QUADS in the WGSL), accumulator vec4s (MAX_ACC). */
const MAX_QUADS = 4;
const MAX_ACC = 16;

/** The weight gradient splits its pixel reduction until about this many workgroups run (a few per compute unit
 * of a large GPU), each split reducing at least MIN_SPLIT_STEPS steps of BK pixels. */
const SPLIT_TARGET_WORKGROUPS = 512;
const MIN_SPLIT_STEPS = 16;

const TILED_PARAMS = uniformLayout(
  FILE,
  "Params",
  u32Fields(
    [
      ...["M", "N", "K", "flags", "aOff", "am", "ak", "aBatch", "bOff4", "ldb4", "bBatch4", "biasOff"],
      ...["cOff", "ldc", "cBatch", "splits", "chunk4", "aOff4", "am4", "aBatch4", "postOff", "postBS"],
      ...["_pad0", "_pad1"],
    ] as const,
  ),
);
type TiledFields = Partial<Record<(typeof TILED_PARAMS.fields)[number][0], number>>;

/** The tile for a GEMM with `rows` rows of C; throws where the adapter's workgroup limits are below it. */
export function tileFor(device: GPUDevice, rows: number): TileShape {
  const tile = rows >= TALL_MIN_ROWS ? TALL : rows >= SQUARE_MIN_ROWS ? SQUARE : WIDE;
  const threads = (tile.BM / tile.TM) * (tile.BN / tile.TN);
  const bytes = 2 * tile.BK * (tile.BM + tile.BN) * 4;
  const quads = Math.ceil((Math.max(tile.BM, tile.BN) * tile.BK) / 4 / threads);
  if (quads > MAX_QUADS || (tile.TM * tile.TN) / 4 > MAX_ACC) {
    throw new Error(`gemm_tiled: tile ${JSON.stringify(tile)} exceeds the kernel's registers`);
  }
  const l = device.limits;
  if (threads > l.maxComputeInvocationsPerWorkgroup || bytes > l.maxComputeWorkgroupStorageSize) {
    throw new Error(
      `gemm_tiled: tile ${
        JSON.stringify(tile)
      } needs ${threads} invocations and ${bytes} bytes of workgroup ` +
        `memory; the adapter allows ${l.maxComputeInvocationsPerWorkgroup} and ${l.maxComputeWorkgroupStorageSize}`,
    );
  }
  return tile;
}

function dispatch(
  ctx: OpContext,
  label: string,
  entry: "gemm_nn" | "gemm_nt",
  elem: ElemType,
  constants: TileShape & { A_ALONG_K?: number },
  fields: TiledFields,
  buffers: Record<number, GPUBuffer>,
  grid: { M: number; N: number; z: number },
): Omit<Dispatch, "flops" | "bytes" | "opClass"> {
  if (grid.z > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new Error(`gemm_tiled: ${label} has ${grid.z} blocks in z`);
  }
  const pipeline = ctx.programs.get(FILE, entry, { ...constants }, elem);
  const own = Object.fromEntries(TILED_PARAMS.fields.map(([k]) => [k, fields[k]])) as TiledFields;
  const u = ctx.uniform(TILED_PARAMS.pack(own, label), label);
  return {
    label,
    pipeline,
    bindGroup: bindBuffers(ctx.device, pipeline, { ...buffers, 5: u }, label),
    workgroups: [groups(grid.N, constants.BN), groups(grid.M, constants.BM), grid.z],
  };
}

/** C[z] (+)= A[z] . B[z] (+ bias) for batch items z < n: A(m, k) at aOff + z*aBatch + m*am + k*ak, B as vec4
 * rows of k (bOff4, ldb4, bBatch4), C(m, n) at cOff + z*cBatch + m*ldc + n; flags 1 adds the bias (at
 * biasOff), 2 adds into C, 4 also writes silu(C) to Post(m, n) at postOff + z*postBS + m*ldc + n. Other
 * properties are ignored. */
export type TiledNN = TiledFields & { M: number; N: number; K: number; n: number };

export function tiledGemmNN(
  ctx: OpContext,
  label: string,
  f: TiledNN,
  buffers: { a: GPUBuffer; b: GPUBuffer; c: GPUBuffer; bias: GPUBuffer; post: GPUBuffer },
  elem: ElemType,
): Omit<Dispatch, "flops" | "bytes" | "opClass"> {
  const tile = tileFor(ctx.device, f.M);
  // Neighbouring invocations load neighbouring addresses of A: along k for row-major W, along m for W^T.
  const A_ALONG_K = f.ak === 1 ? 1 : 0;
  return dispatch(ctx, label, "gemm_nn", elem, { ...tile, A_ALONG_K }, f, {
    0: buffers.a,
    2: buffers.b,
    3: buffers.c,
    4: buffers.bias,
    6: buffers.post,
  }, { M: f.M, N: f.N, z: f.n });
}

/** Part[item * splits + s][m][n] = sum over split s's vec4s of k of A(m, k) B(n, k), A and B vec4 rows of k
 * (r4 vec4s each, rows am4 resp. ldb4 apart, items aBatch4 resp. bBatch4 apart, from aOff4 resp. bOff4). */
export type TiledNT = TiledFields & { M: number; N: number; r4: number; n: number };

/** The weight gradient's partial sums: how many (nsplit, items times splits) and the dispatch writing them into
 * `part` (the caller sizes it with tiledSplits and reduces it). */
export function tiledSplits(device: GPUDevice, f: Pick<TiledNT, "M" | "N" | "r4" | "n">) {
  const tile = tileFor(device, f.M);
  const blocks = Math.ceil(f.M / tile.BM) * Math.ceil(f.N / tile.BN) * f.n;
  const step4 = tile.BK / 4;
  const maxSplits = Math.max(1, Math.floor(f.r4 / (MIN_SPLIT_STEPS * step4)));
  const wanted = Math.max(1, Math.min(Math.ceil(SPLIT_TARGET_WORKGROUPS / blocks), maxSplits));
  // Each split a whole number of steps, so only the last split of an item has a partial step.
  const chunk4 = Math.ceil(f.r4 / wanted / step4) * step4;
  const splits = Math.ceil(f.r4 / chunk4);
  return { tile, splits, chunk4, nsplit: f.n * splits };
}

export function tiledGemmNT(
  ctx: OpContext,
  label: string,
  f: TiledNT,
  buffers: { a: GPUBuffer; b: GPUBuffer; part: GPUBuffer },
  elem: ElemType,
): Omit<Dispatch, "flops" | "bytes" | "opClass"> {
  const { tile, splits, chunk4, nsplit } = tiledSplits(ctx.device, f);
  return dispatch(ctx, label, "gemm_nt", elem, tile, {
    ...f,
    K: f.r4,
    splits,
    chunk4,
    cOff: 0,
    ldc: f.N,
    cBatch: f.M * f.N,
  }, {
    1: buffers.a,
    2: buffers.b,
    3: buffers.part,
    // The epilogue's bias read is dead here (flags 0) but in the layout: any read-only buffer will do.
    4: buffers.a,
  }, { M: f.M, N: f.N, z: nsplit });
}
