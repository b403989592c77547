import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { GpuMemory } from "../../src/gpu/memory.ts";
import { createOpContext } from "../../src/ops/context.ts";
import { planConv } from "../../src/ops/conv.ts";
import { KERNEL_FAMILIES, type KernelFamily } from "../../src/ops/kernel_family.ts";
import type { OpPlan, TensorView } from "../../src/ops/types.ts";
import { convBackward, convForward, convOutSize, type ConvShape } from "../../src/reference/ops/conv.ts";
import { applyBackward, applyForward, silu } from "../../src/reference/ops/activations.ts";
import {
  assertClose,
  assertUntouched,
  checkFiniteDifferences,
  dot,
  opContext,
  place,
  randomArray,
  readPlaced,
  rng,
  run,
} from "./_helpers.ts";

/** f32 results of sums of up to ~300 products of O(1) numbers (3200 for the weight gradient of the 40x40 case):
 * rounding errors grow like sqrt(terms) * 6e-8 * (magnitude of the partial sums, up to ~10x the result scale,
 * itself ~sqrt(terms)); 1e-5 of the output's largest magnitude leaves headroom for that and still catches any
 * wrong tap, which moves results by O(1e-1). */
const F32_SUM_TOL = 1e-5;

const CASES: ConvShape[] = [
  { n: 2, cin: 3, h: 7, w: 9, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1 },
  { n: 2, cin: 5, h: 9, w: 8, cout: 11, kh: 3, kw: 3, stride: 2, pad: 1 },
  { n: 2, cin: 6, h: 5, w: 7, cout: 9, kh: 1, kw: 1, stride: 1, pad: 0 },
  { n: 2, cin: 3, h: 11, w: 10, cout: 4, kh: 6, kw: 6, stride: 2, pad: 2 },
  { n: 2, cin: 17, h: 6, w: 5, cout: 13, kh: 3, kw: 3, stride: 2, pad: 1 },
  { n: 2, cin: 9, h: 5, w: 6, cout: 3, kh: 1, kw: 1, stride: 2, pad: 0 },
  // 4x6 pixels and 4-aligned views: the 1x1 path that reads x and dy in place as vec4 rows (no im2col)
  { n: 2, cin: 6, h: 4, w: 6, cout: 9, kh: 1, kw: 1, stride: 1, pad: 0 },
  { n: 2, cin: 12, h: 8, w: 4, cout: 10, kh: 3, kw: 3, stride: 1, pad: 1 },
];
/** Shapes for the tiled family's blocks (src/ops/gemm_tiled.ts): none a multiple of a block, odd k, 3 images. */
const TILED_CASES: ConvShape[] = [
  // forward and weight gradient in 70-row square blocks, backward-data's 261 rows (29*9) in tall ones
  { n: 2, cin: 29, h: 7, w: 6, cout: 70, kh: 3, kw: 3, stride: 1, pad: 1 },
  // 221 pixels (unaligned) over two 128-column wide blocks, 45 rows of k, batch 3
  { n: 3, cin: 5, h: 13, w: 17, cout: 20, kh: 3, kw: 3, stride: 1, pad: 1 },
  // 1600 pixels: the weight gradient's reduction split 12 ways, the last split shorter; k = 27
  { n: 2, cin: 3, h: 40, w: 40, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1 },
];
/** CASES index of the 1x1 stride-1 conv on 4-aligned views (x at offset 4 for its seed, 24 pixels). */
const IN_PLACE_1X1 = 6;
const name = (s: ConvShape) => `${s.n}x${s.cin}x${s.h}x${s.w} -> ${s.cout} k${s.kh} s${s.stride} p${s.pad}`;

/** The GEMM operands' storage: f32, or f16 as amp makes them (ConvArgs.halfWeights). */
const PRECISIONS = ["f32", "f16"] as const;
type Precision = (typeof PRECISIONS)[number];

/** A buffer of f16 values with `data` from element `offset` on (the amp copy of the flat params, which amp
 * converts from the f32 params: rounded to f32 first, as toHalf rounds; straight from float64 a value near an
 * f16 tie can round the other way, which moved a 198-tap sum past the tolerance). */
function placeHalf(device: GPUDevice, shape: number[], data: ArrayLike<number>, offset: number): TensorView {
  const values = new Float16Array(Math.ceil((offset + data.length) / 8) * 8).fill(7);
  values.set(Array.from(data, (v) => Math.fround(v)), offset);
  const buffer = device.createBuffer({
    size: values.byteLength,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(buffer, 0, values);
  return { buffer, offset, shape };
}

/** What f16 operands make of a value: stored as f32 first (the test's buffers), then rounded to f16 (IEEE round
 * to nearest even) by the kernel that converts it. */
const toHalf = (a: ArrayLike<number>) => Float64Array.from(a, (v) => Math.f16round(Math.fround(v)));

/**
 * Runs forward and backward of case `s` on views and compares everything with the float64 reference. With
 * `silu`, a SiLU is fused after the conv: its output and the conv's dy (from the SiLU output's gradient) are
 * compared too. With `half`, the GEMMs read f16 operands (amp): the reference then takes x, w and the dy the
 * GEMMs read rounded to f16 (dy unrounded for db, which sums dy itself), and the kernels' f32 accumulation is
 * held to the same tolerance as in f32 mode.
 */
async function checkConv(
  device: GPUDevice,
  kernels: KernelFamily,
  s: ConvShape,
  seed: number,
  opts: { maxScratchBytes?: number; silu?: boolean; half?: boolean } = {},
): Promise<OpPlan> {
  const rand = rng(100 + seed);
  const [ho, wo] = convOutSize(s);
  const x = randomArray(s.n * s.cin * s.h * s.w, rand);
  const w = randomArray(s.cout * s.cin * s.kh * s.kw, rand);
  const b = randomArray(s.cout, rand);
  const dyIn = randomArray(s.n * s.cout * ho * wo, rand);
  const dxOld = randomArray(x.length, rand);
  const dwOld = randomArray(w.length, rand);
  const dbOld = randomArray(b.length, rand);
  const P = ho * wo;
  const [xr, wr] = opts.half ? [toHalf(x), toHalf(w)] : [x, w];
  const yRef = convForward(s, xr, wr, b);
  // Fused: dyIn is the SiLU output's gradient, the conv's own dy follows from it (the kernels overwrite DY).
  const dy = opts.silu ? applyBackward(silu, yRef, dyIn) : dyIn;
  const POST = opts.silu
    ? place(device, [s.n, s.cout, ho, wo], undefined, { offset: P, batchStride: (s.cout + 1) * P, fill: 4 })
    : undefined;
  const DPOST = opts.silu ? place(device, [s.n, s.cout, ho, wo], dyIn, { offset: 4, fill: 6 }) : undefined;
  // y and dy are channel slices of a wider (concat-like) tensor; w and b sit at offsets of shared flat buffers.
  const X = place(device, [s.n, s.cin, s.h, s.w], x, { offset: 4 - (seed % 2), fill: 7 });
  const W = place(device, [s.cout, s.cin, s.kh, s.kw], w, { offset: 4 });
  const B = place(device, [s.cout], b, { offset: 8 });
  const Y = place(device, [s.n, s.cout, ho, wo], undefined, {
    offset: 2 * P,
    batchStride: (s.cout + 3) * P,
    fill: 5,
  });
  const DY = place(device, [s.n, s.cout, ho, wo], opts.silu ? undefined : dy, {
    offset: P,
    batchStride: (s.cout + 2) * P,
    fill: 9,
  });
  // dx 4-aligned for even seeds (the kernels' vec4 stores), off by one for odd ones (their scalar stores).
  const DX = place(device, [s.n, s.cin, s.h, s.w], dxOld, { offset: seed % 2 ? 1 : 4, fill: 3 });
  const DW = place(device, [s.cout, s.cin, s.kh, s.kw], dwOld, { offset: 4, fill: 2 });
  const DB = place(device, [s.cout], dbOld, { offset: 12, fill: 2 });
  const plan = planConv(opContext(device, kernels), {
    x: X.view,
    w: W.view,
    b: B.view,
    y: Y.view,
    dy: DY.view,
    dx: DX.view,
    dw: DW.view,
    db: DB.view,
    stride: s.stride,
    pad: s.pad,
    accumulate: true,
    maxScratchBytes: opts.maxScratchBytes,
    silu: POST && { y: POST.view, dy: DPOST!.view },
    halfWeights: opts.half ? placeHalf(device, W.view.shape, w, 4) : undefined,
  });
  await run(device, [...plan.forward, ...plan.backward]);
  const y = await readPlaced(device, Y);
  assertClose(y.inside, yRef, F32_SUM_TOL, "y");
  assertUntouched(y.outside, "y");
  if (POST) {
    const post = await readPlaced(device, POST);
    assertClose(post.inside, applyForward(silu, yRef), F32_SUM_TOL, "silu(y)");
    assertUntouched(post.outside, "silu(y)");
  }
  // The dy the GEMMs read. A fused SiLU's dy is checked against the reference's, and with f16 operands the GEMMs
  // read the kernel's own f32 dy rounded to f16: an f32 difference of one ulp can move a value across an f16
  // rounding boundary, a whole f16 ulp, so rounding the reference's dy instead would test luck, not kernels.
  let dyGemm: ArrayLike<number> = dy;
  if (POST) {
    const dyGot = await readPlaced(device, DY);
    assertClose(dyGot.inside, dy, F32_SUM_TOL, "dy from the SiLU's gradient");
    assertUntouched(dyGot.outside, "dy");
    if (opts.half) dyGemm = dyGot.inside;
  }
  const ref = convBackward(s, xr, wr, opts.half ? toHalf(dyGemm) : dy);
  // The bias gradient sums the f32 dy itself, not the GEMMs' f16 copy.
  const refDb = opts.half ? convBackward(s, xr, wr, dy).db : ref.db;
  const dx = await readPlaced(device, DX);
  assertClose(dx.inside, ref.dx.map((v, i) => v + dxOld[i]), F32_SUM_TOL, "dx (accumulated)");
  assertUntouched(dx.outside, "dx");
  const dw = await readPlaced(device, DW);
  assertClose(dw.inside, ref.dw.map((v, i) => v + dwOld[i]), F32_SUM_TOL, "dw (added)");
  assertUntouched(dw.outside, "dw");
  const db = await readPlaced(device, DB);
  assertClose(db.inside, refDb.map((v, i) => v + dbOld[i]), F32_SUM_TOL, "db (added)");
  assertUntouched(db.outside, "db");
  return plan;
}

/** Maps with few channels, where the weight gradient lets lanes share a tile and backward-data is a direct conv
 * of dy: conv_direct where dx is unaligned, conv_direct_rows where the rows hold whole 8-pixel tiles (40 wide),
 * conv_direct_vec4 where they do not (36 wide). [shape, seed (odd: dx unaligned), backward-data entry point] */
const DIRECT_CASES: [ConvShape, number, string][] = [
  [{ n: 2, cin: 3, h: 40, w: 40, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1 }, 11, "conv_direct"],
  [{ n: 2, cin: 3, h: 40, w: 40, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1 }, 12, "conv_direct_rows"],
  // 10 channels of dx (two row tiles of the GEMM's 8), 12 of dy
  [{ n: 2, cin: 10, h: 40, w: 40, cout: 12, kh: 3, kw: 3, stride: 1, pad: 1 }, 14, "conv_direct_rows"],
  [{ n: 2, cin: 3, h: 45, w: 36, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1 }, 16, "conv_direct_vec4"],
];

for (const [s, seed, entry] of DIRECT_CASES) {
  gpuTest(
    `planConv on a ${s.h}x${s.w} map with few channels: weight gradient with lanes sharing a tile, backward-data ` +
      `as a direct conv of dy (${entry}, dx ${seed % 2 ? "unaligned" : "4-aligned"}), and both match`,
    async (device) => {
      const plan = await checkConv(device, "register", s, seed);
      const entries = plan.backward.map((d) => d.pipeline.label);
      assert.ok(entries.includes("ops/conv.wgsl:gemm_nt_lanes"), `backward entry points: ${entries}`);
      assert.ok(entries.includes(`ops/conv_direct.wgsl:${entry}`), `backward entry points: ${entries}`);
      assert.ok(!entries.some((e) => e.endsWith(":col2im")), `no col2im: ${entries}`);
    },
  );
}

/** The GEMM entry points a plan runs, by pipeline label ("ops/gemm_tiled.wgsl:gemm_nn"). */
const gemmEntries = (dispatches: { pipeline: GPUComputePipeline }[]) =>
  dispatches.map((d) => d.pipeline.label).filter((l) => /:gemm_/.test(l));

/** Each family's GEMMs run where planConv plans it, and only its own: a plan silently falling back to the other
 * family would pass the comparisons without testing this one. */
function assertFamilyRan(plan: OpPlan, kernels: KernelFamily): void {
  const file = kernels === "tiled" ? "ops/gemm_tiled.wgsl" : "ops/conv.wgsl";
  const forward = gemmEntries(plan.forward);
  const backward = gemmEntries(plan.backward);
  assert.ok(
    forward.length > 0 && forward.every((l) => l.startsWith(`${file}:gemm_nn`)),
    `forward GEMMs: ${forward}`,
  );
  assert.ok(backward.every((l) => l.startsWith(`${file}:`)), `backward GEMMs: ${backward}`);
  // The register family's weight gradient of 64+ channels is gemm_nn on transposed operands (conv_dw_nn.wgsl).
  const transposed = plan.backward.some((d) => d.pipeline.label === "ops/conv_dw_nn.wgsl:reduce_t");
  assert.ok(
    backward.some((l) => l.startsWith(`${file}:gemm_nt`)) || (kernels === "register" && transposed),
    `weight-gradient GEMM: ${backward}`,
  );
}

/** How a test names its operands' precision. */
const operands = (p: Precision) => p === "f16" ? "f16 operands (amp)" : "f32 operands";

for (const kernels of KERNEL_FAMILIES) {
  for (const precision of PRECISIONS) {
    const what = `${kernels} kernels, ${operands(precision)}`;
    for (const [ci, s] of CASES.entries()) {
      gpuTest(
        `planConv (${what}) matches the TS reference forward and backward for ${name(s)}`,
        async (device) => {
          const plan = await checkConv(device, kernels, s, ci, { half: precision === "f16" });
          assertFamilyRan(plan, kernels);
          const classes = [...plan.forward, ...plan.backward].map((d) => d.opClass);
          if (precision === "f16") {
            assert.ok(classes.includes("conv_im2col"), `f16 columns are always built: ${classes}`);
          } else if (ci === IN_PLACE_1X1) {
            // x is its own column matrix and dy is read in place: no im2col, no padded copy, no col2im
            assert.ok(!classes.some((c) => c === "conv_im2col" || c === "conv_col2im"), `${classes}`);
          }
        },
      );
    }
  }
}

for (const precision of PRECISIONS) {
  for (const [ci, s] of TILED_CASES.entries()) {
    gpuTest(
      `planConv (tiled kernels, ${operands(precision)}) over several blocks and splits matches the TS ` +
        `reference for ${name(s)}`,
      async (device) => {
        const plan = await checkConv(device, "tiled", s, ci, { half: precision === "f16" });
        assertFamilyRan(plan, "tiled");
        // backward-data as the tiled GEMM + col2im (the direct conv is a register-family kernel)
        assert.ok(
          gemmEntries(plan.backward).includes("ops/gemm_tiled.wgsl:gemm_nn"),
          `backward: ${plan.backward.map((d) => d.pipeline.label)}`,
        );
      },
    );
  }
}

/** Shapes with 64+ output channels, whose register-family weight gradient is gemm_nn on transposed operands. */
const MANY_CHANNEL_CASES: ConvShape[] = [
  // 42 pixels (unaligned, padded to 44: transpose_dy) and 70 channels (padded to 72)
  { n: 2, cin: 5, h: 7, w: 6, cout: 70, kh: 3, kw: 3, stride: 1, pad: 1 },
  // stride 2, 3 images, 65 channels
  { n: 3, cin: 6, h: 9, w: 8, cout: 65, kh: 3, kw: 3, stride: 2, pad: 1 },
  // 1x1 on 24 pixels: x is its own column matrix (f32)
  { n: 2, cin: 8, h: 4, w: 6, cout: 64, kh: 1, kw: 1, stride: 1, pad: 0 },
];

for (const precision of PRECISIONS) {
  for (const [ci, s] of MANY_CHANNEL_CASES.entries()) {
    gpuTest(
      `planConv (register kernels, ${operands(precision)}) with ${s.cout} channels: the weight gradient as ` +
        `gemm_nn on transposed dy and columns matches the TS reference for ${name(s)}`,
      async (device) => {
        const plan = await checkConv(device, "register", s, 20 + ci, { half: precision === "f16" });
        assertFamilyRan(plan, "register");
        const entries = plan.backward.map((d) => d.pipeline.label);
        // dy's rows (P pixels, at 4-aligned offsets where P is a multiple of 4) read as vec4 where they can be
        const [ho, wo] = convOutSize(s);
        const transpose = (ho * wo) % 4 === 0 ? "transpose_dy4" : "transpose_dy";
        for (const entry of [transpose, "reduce_t"]) {
          assert.ok(entries.includes(`ops/conv_dw_nn.wgsl:${entry}`), `backward entry points: ${entries}`);
        }
        assert.ok(!entries.some((e) => e.includes(":gemm_nt")), `no gemm_nt: ${entries}`);
      },
    );
  }
}

/** 256 channels, 198 taps and 8 images: enough workgroups that the transposed weight gradient's gemm_nn sums
 * pairs of images' products into 4 partials (conv_weight_grad.ts imagesPerPartial). */
const SUMMED_CASE: ConvShape = { n: 8, cin: 22, h: 4, w: 4, cout: 256, kh: 3, kw: 3, stride: 1, pad: 1 };

for (const precision of PRECISIONS) {
  gpuTest(
    `planConv (register kernels, ${operands(precision)}) with ${SUMMED_CASE.cout} channels: the weight ` +
      `gradient's gemm_nn sums pairs of images' products and matches the TS reference for ` +
      name(SUMMED_CASE),
    async (device) => {
      const plan = await checkConv(device, "register", SUMMED_CASE, 24, { half: precision === "f16" });
      const gemm = plan.backward.find((d) =>
        d.opClass === "conv_bwd_weight" && /:gemm_nn/.test(d.pipeline.label)
      );
      assert.ok(gemm, `backward: ${plan.backward.map((d) => d.pipeline.label)}`);
      assert.equal(gemm.workgroups[2], 4, "one partial per pair of images");
    },
  );
}

/** Register-family column matrices wider than one panel (conv_kernels.ts COL_PANEL, 16 vec4s) with a narrower
 * last panel, read by each weight-gradient GEMM: gemm_nt with splits that start inside panels, gemm_nn on
 * transposed operands (64+ channels), gemm_nt_lanes. */
const PANEL_CASES: ConvShape[] = [
  // 221 pixels: 56 vec4 columns = 3 panels + 8; the weight gradient's 4 splits of 14 columns
  { n: 2, cin: 4, h: 13, w: 17, cout: 6, kh: 3, kw: 3, stride: 1, pad: 1 },
  // 414 pixels (104 vec4 columns = 6 panels + 8), 66 channels
  { n: 2, cin: 3, h: 18, w: 23, cout: 66, kh: 3, kw: 3, stride: 1, pad: 1 },
  // 1640 pixels (410 vec4 columns = 25 panels + 10), few channels: lanes sharing a tile
  { n: 2, cin: 2, h: 41, w: 40, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1 },
];

for (const precision of PRECISIONS) {
  for (const [ci, s] of PANEL_CASES.entries()) {
    gpuTest(
      `planConv (register kernels, ${operands(precision)}) with columns over several panels matches the TS ` +
        `reference for ${name(s)}`,
      async (device) => {
        const plan = await checkConv(device, "register", s, 30 + ci, { half: precision === "f16" });
        assertFamilyRan(plan, "register");
        assert.ok(plan.forward.some((d) => d.opClass === "conv_im2col"), "the columns are built");
      },
    );
  }
}

/** Maps whose input and output rows hold whole vec4s (x 4-aligned: even seeds), whose register-family columns
 * im2col_rows builds from whole input vec4s, over several panels with a narrower last one. */
const QUAD_ROW_CASES: ConvShape[] = [
  // the stem's k6 s2 p2 (YOLOv5 v6+): 10x12 output pixels, 30 vec4 columns = 1 panel + 14
  { n: 2, cin: 3, h: 20, w: 24, cout: 5, kh: 6, kw: 6, stride: 2, pad: 2 },
  // k3 s2 p1 on a 40-wide map: 9x20 output pixels, 45 vec4 columns = 2 panels + 13
  { n: 2, cin: 5, h: 17, w: 40, cout: 6, kh: 3, kw: 3, stride: 2, pad: 1 },
  // k3 s1 p1 on a 12-wide map: 13x12 output pixels, 39 vec4 columns
  { n: 2, cin: 4, h: 13, w: 12, cout: 7, kh: 3, kw: 3, stride: 1, pad: 1 },
];
/** A k3 s2 p1 conv on an even map whose output rows hold whole vec4s: col2im_k3s2 adds its column gradients
 * (9x12 output pixels, 3 runs of 8 dx pixels per row). */
const EVEN_K3S2: ConvShape = { n: 2, cin: 5, h: 18, w: 24, cout: 6, kh: 3, kw: 3, stride: 2, pad: 1 };

for (const precision of PRECISIONS) {
  for (const [ci, s] of QUAD_ROW_CASES.entries()) {
    gpuTest(
      `planConv (register kernels, ${operands(precision)}) with columns built from whole input vec4s ` +
        `(im2col_rows) matches the TS reference for ${name(s)}`,
      async (device) => {
        const plan = await checkConv(device, "register", s, 40 + 2 * ci, { half: precision === "f16" });
        const entries = plan.forward.map((d) => d.pipeline.label);
        assert.ok(entries.includes("ops/conv_columns.wgsl:im2col_rows"), `forward entry points: ${entries}`);
      },
    );
  }
}

/** A k3 s1 p1 conv whose rows are whole vec4s: col2im_k3s1 adds its column gradients (9x12 pixels, 3 runs of 4
 * per row; a map this small takes backward-data by GEMM, not as the direct conv, in both families). */
const ROW_K3S1: ConvShape = { n: 2, cin: 5, h: 9, w: 12, cout: 6, kh: 3, kw: 3, stride: 1, pad: 1 };

for (const kernels of KERNEL_FAMILIES) {
  for (const precision of PRECISIONS) {
    for (const [s, entry] of [[EVEN_K3S2, "col2im_k3s2"], [ROW_K3S1, "col2im_k3s1"]] as const) {
      const what = `${kernels} kernels, ${operands(precision)}`;
      gpuTest(
        `planConv (${what}) adds backward-data's column gradients by runs of vec4s (${entry}) and matches the ` +
          `TS reference for ${name(s)}`,
        async (device) => {
          const plan = await checkConv(device, kernels, s, 50, { half: precision === "f16" });
          const entries = plan.backward.map((d) => d.pipeline.label);
          assert.ok(entries.includes(`ops/conv_columns.wgsl:${entry}`), `backward entry points: ${entries}`);
        },
      );
    }
  }
}

gpuTest(
  "planConv (register kernels) with f16 operands on a 40x40 map: backward-data by GEMM + col2im (the direct " +
    "conv reads f32 dy)",
  async (device) => {
    const s: ConvShape = { n: 2, cin: 3, h: 40, w: 40, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1 };
    const plan = await checkConv(device, "register", s, 12, { half: true });
    const entries = plan.backward.map((d) => d.pipeline.label);
    assert.ok(entries.some((e) => e.includes(":col2im")), `backward entry points: ${entries}`);
  },
);

for (const kernels of KERNEL_FAMILIES) {
  gpuTest(
    `planConv (${kernels} kernels) with f16 operands: an activation past f16's range becomes inf, not a ` +
      `clamped finite value`,
    async (device) => {
      const s = CASES[0];
      const rand = rng(3);
      const [ho, wo] = convOutSize(s);
      const x = randomArray(s.n * s.cin * s.h * s.w, rand);
      // Past 65520 IEEE rounding to f16 gives inf; amp's overflow check relies on it (unscale.wgsl).
      x[10] = 70000;
      const w = randomArray(s.cout * s.cin * s.kh * s.kw, rand).map((v) => Math.abs(v) + 0.1);
      const W = place(device, [s.cout, s.cin, s.kh, s.kw], w);
      const Y = place(device, [s.n, s.cout, ho, wo], undefined);
      const plan = planConv(opContext(device, kernels), {
        x: place(device, [s.n, s.cin, s.h, s.w], x).view,
        w: W.view,
        halfWeights: placeHalf(device, W.view.shape, w, 0),
        y: Y.view,
        stride: s.stride,
        pad: s.pad,
      });
      await run(device, plan.forward);
      const y = (await readPlaced(device, Y)).inside;
      assert.ok(y.some((v) => v === Infinity), "some output reads the inf");
      assert.ok(y.some(Number.isFinite), "outputs away from it stay finite");
    },
  );
}

// The fused SiLU on unaligned (scalar stores) and aligned (vec4) maps, on x read in place (1x1), and in slices.
const SILU_CASES: [ConvShape, { maxScratchBytes?: number }][] = [
  [CASES[1], {}],
  [CASES[6], {}],
  [CASES[7], {}],
  [TILED_CASES[1], {}],
  // 45 im2col rows of 20 pixels: 3600 bytes per image, two slices of the batch of 3
  [{ n: 3, cin: 5, h: 9, w: 8, cout: 11, kh: 3, kw: 3, stride: 2, pad: 1 }, { maxScratchBytes: 7200 }],
];
// Under amp (f16 operands) the SiLU's output and gradient stay f32 like every activation: only the GEMMs' dy
// copy is f16.
for (const kernels of KERNEL_FAMILIES) {
  for (const precision of PRECISIONS) {
    for (const [ci, [s, opts]] of SILU_CASES.entries()) {
      gpuTest(
        `planConv (${kernels} kernels, ${operands(precision)}) with a fused SiLU: silu(conv), dy from the ` +
          `SiLU's gradient, dx, dw and db match the TS reference for ${name(s)}` +
          (opts.maxScratchBytes ? " in batch slices" : ""),
        async (device) => {
          const half = precision === "f16";
          const plan = await checkConv(device, kernels, s, 20 + ci, { ...opts, silu: true, half });
          assertFamilyRan(plan, kernels);
          const entries = plan.backward.map((d) => d.pipeline.label);
          assert.ok(entries.some((e) => e.startsWith("ops/silu_bias_grad.wgsl:")), `backward: ${entries}`);
          assert.ok(!entries.some((e) => e.endsWith(":bias_grad")), `no separate bias_grad: ${entries}`);
        },
      );
    }
  }
}

gpuTest(
  "planConv refuses a fused SiLU without bias, without db for its gradient, or in x's buffer",
  (device) => {
    const s = CASES[1];
    const [ho, wo] = convOutSize(s);
    const out = () => place(device, [s.n, s.cout, ho, wo], undefined).view;
    const X = place(device, [s.n, s.cin, s.h, s.w], undefined).view;
    const base = {
      x: X,
      w: place(device, [s.cout, s.cin, s.kh, s.kw], undefined).view,
      b: place(device, [s.cout], undefined).view,
      y: out(),
      stride: s.stride,
      pad: s.pad,
    };
    assert.throws(
      () => planConv(opContext(device), { ...base, b: undefined, silu: { y: out() } }),
      /a fused SiLU needs the conv's bias/,
    );
    assert.throws(
      () => planConv(opContext(device), { ...base, dy: out(), silu: { y: out(), dy: out() } }),
      /a fused SiLU's dy needs the conv's dy and db/,
    );
    assert.throws(
      () => planConv(opContext(device), { ...base, silu: { y: { ...out(), buffer: X.buffer } } }),
      /shares a buffer with x/,
    );
  },
);

gpuTest(
  "planConv plans batches whose im2col exceeds the scratch limit in slices (3 images as 2 + 1)",
  async (device) => {
    const s: ConvShape = { n: 3, cin: 5, h: 9, w: 8, cout: 11, kh: 3, kw: 3, stride: 2, pad: 1 };
    // 5*3*3 = 45 im2col rows of 5*4 = 20 pixels: 3600 bytes per image, so a 7200-byte limit takes 2 at a time.
    const plan = await checkConv(device, "register", s, 9, { maxScratchBytes: 7200 });
    assert.equal(plan.forward.filter((d) => d.opClass === "conv_im2col").length, 2, "im2col dispatches");
  },
);

const OVERWRITE_CASES = [[CASES[1], "col2im"], [EVEN_K3S2, "col2im_k3s2"], [
  ROW_K3S1,
  "col2im_k3s1",
]] as const;
for (const [s, col2imEntry] of OVERWRITE_CASES) {
  gpuTest(
    `planConv backward overwrites dx without accumulate (${col2imEntry}) and skips what is not asked for`,
    async (device) => {
      const rand = rng(7);
      const [ho, wo] = convOutSize(s);
      const x = randomArray(s.n * s.cin * s.h * s.w, rand);
      const w = randomArray(s.cout * s.cin * s.kh * s.kw, rand);
      const dy = randomArray(s.n * s.cout * ho * wo, rand);
      const X = place(device, [s.n, s.cin, s.h, s.w], x);
      const W = place(device, [s.cout, s.cin, s.kh, s.kw], w);
      const Y = place(device, [s.n, s.cout, ho, wo], undefined);
      const DY = place(device, [s.n, s.cout, ho, wo], dy);
      const DX = place(device, [s.n, s.cin, s.h, s.w], randomArray(x.length, rand));
      const plan = planConv(opContext(device), {
        x: X.view,
        w: W.view,
        y: Y.view,
        dy: DY.view,
        dx: DX.view,
        stride: s.stride,
        pad: s.pad,
      });
      await run(device, [...plan.forward, ...plan.backward]);
      assertClose((await readPlaced(device, Y)).inside, convForward(s, x, w), F32_SUM_TOL, "y without bias");
      assertClose(
        (await readPlaced(device, DX)).inside,
        convBackward(s, x, w, dy).dx,
        F32_SUM_TOL,
        "dx (overwritten)",
      );
      // Frozen weights (no dw, db): backward is dx alone; nothing needed upstream either: no backward at all.
      const classes = new Set(plan.backward.map((d) => d.opClass));
      assert.deepEqual([...classes].sort(), ["conv_bwd_data", "conv_col2im"]);
      const entries = plan.backward.map((d) => d.pipeline.label);
      assert.ok(
        entries.includes(`ops/conv_columns.wgsl:${col2imEntry}`),
        `backward entry points: ${entries}`,
      );
      const frozen = planConv(opContext(device), {
        x: X.view,
        w: W.view,
        y: Y.view,
        stride: s.stride,
        pad: s.pad,
      });
      assert.equal(frozen.backward.length, 0, "a conv with no gradients requested planned backward work");
    },
  );
}

gpuTest(
  "recomputeColumns: convs of one context share a column scratch yet nest like a program (A, B, B', A')",
  async (device) => {
    // B's columns (45 rows x 20 pixels x 2) fit in A's (108 x 28 x 2), so B reuses A's buffer: A's weight
    // gradient is only right if A's backward rebuilds its columns after B overwrote them.
    const ctx = createOpContext(new GpuMemory(device), new ProgramCache(device));
    const cases = [CASES[3], CASES[1]].map((s, i) => {
      const rand = rng(40 + i);
      const [ho, wo] = convOutSize(s);
      const x = randomArray(s.n * s.cin * s.h * s.w, rand);
      const w = randomArray(s.cout * s.cin * s.kh * s.kw, rand);
      const dy = randomArray(s.n * s.cout * ho * wo, rand);
      const DX = place(device, [s.n, s.cin, s.h, s.w], undefined);
      const DW = place(device, [s.cout, s.cin, s.kh, s.kw], undefined);
      const plan = planConv(ctx, {
        x: place(device, [s.n, s.cin, s.h, s.w], x).view,
        w: place(device, [s.cout, s.cin, s.kh, s.kw], w).view,
        y: place(device, [s.n, s.cout, ho, wo], undefined).view,
        dy: place(device, [s.n, s.cout, ho, wo], dy).view,
        dx: DX.view,
        dw: DW.view,
        stride: s.stride,
        pad: s.pad,
        recomputeColumns: true,
      });
      return { plan, DX, DW, ref: convBackward(s, x, w, dy) };
    });
    const [a, b] = cases;
    const scratchBefore = ctx.scratchBytes();
    assert.equal(ctx.transient("conv columns", 4 * 2 * 45 * 20, "probe").size >= 4 * 2 * 108 * 28, true);
    assert.equal(ctx.scratchBytes(), scratchBefore, "B's columns did not fit the slot A created");
    await run(device, [...a.plan.forward, ...b.plan.forward, ...b.plan.backward, ...a.plan.backward]);
    for (const [c, what] of [[a, "A"], [b, "B"]] as const) {
      assertClose((await readPlaced(device, c.DW)).inside, c.ref.dw, F32_SUM_TOL, `dw of ${what}`);
      assertClose((await readPlaced(device, c.DX)).inside, c.ref.dx, F32_SUM_TOL, `dx of ${what}`);
    }
  },
);

Deno.test("reference conv backward matches central differences of sum(conv(x, w, b) * dy)", () => {
  for (const s of [CASES[1], CASES[3]]) {
    const rand = rng(3);
    const [ho, wo] = convOutSize(s);
    const x = randomArray(s.n * s.cin * s.h * s.w, rand);
    const w = randomArray(s.cout * s.cin * s.kh * s.kw, rand);
    const b = randomArray(s.cout, rand);
    const dy = randomArray(s.n * s.cout * ho * wo, rand);
    const g = convBackward(s, x, w, dy);
    const loss = () => dot(convForward(s, x, w, b), dy);
    checkFiniteDifferences(x, g.dx, loss, `dx ${name(s)}`);
    checkFiniteDifferences(w, g.dw, loss, `dw ${name(s)}`);
    checkFiniteDifferences(b, g.db, loss, `db ${name(s)}`);
  }
});

/**
 * Backward-data of part of x's channels (ConvArgs.dxChannels: a Concat input from frozen layers takes no
 * gradient): those channels of dx are the whole backward-data's, bit for bit (the same GEMM rows, summed in the
 * same order), the other channels keep what dx held, and the GEMM does only their share of the work.
 */
async function checkDxChannels(
  device: GPUDevice,
  kernels: KernelFamily,
  s: ConvShape,
  range: { start: number; count: number },
  half: boolean,
): Promise<void> {
  const rand = rng(300 + s.cin);
  const [ho, wo] = convOutSize(s);
  const x = randomArray(s.n * s.cin * s.h * s.w, rand);
  const w = randomArray(s.cout * s.cin * s.kh * s.kw, rand);
  const dy = randomArray(s.n * s.cout * ho * wo, rand);
  const dxOld = randomArray(x.length, rand);
  const ctx = opContext(device, kernels);
  const backwardData = async (dxChannels?: { start: number; count: number }) => {
    const X = place(device, [s.n, s.cin, s.h, s.w], x, { offset: 4, fill: 7 });
    const W = place(device, [s.cout, s.cin, s.kh, s.kw], w, { offset: 4 });
    const DX = place(device, [s.n, s.cin, s.h, s.w], dxOld, { offset: 4, fill: 3 });
    const plan = planConv(ctx, {
      x: X.view,
      w: W.view,
      y: place(device, [s.n, s.cout, ho, wo], undefined).view,
      dy: place(device, [s.n, s.cout, ho, wo], dy).view,
      dx: DX.view,
      dxChannels,
      stride: s.stride,
      pad: s.pad,
      accumulate: true,
      halfWeights: half ? placeHalf(device, W.view.shape, w, 4) : undefined,
    });
    await run(device, [...plan.forward, ...plan.backward]);
    const dataFlops = plan.backward.filter((d) => d.opClass === "conv_bwd_data")
      .reduce((a, d) => a + (d.flops ?? 0), 0);
    return { dx: await readPlaced(device, DX), dataFlops };
  };
  const whole = await backwardData();
  const part = await backwardData(range);
  assertUntouched(part.dx.outside, "dx");
  const plane = s.h * s.w, per = s.cin * plane;
  for (let i = 0; i < dxOld.length; i++) {
    const c = Math.floor((i % per) / plane);
    const inRange = c >= range.start && c < range.start + range.count;
    const want = inRange ? whole.dx.inside[i] : Math.fround(dxOld[i]);
    if (part.dx.inside[i] !== want) {
      assert.fail(
        `dx[${i}] (channel ${c}, ${inRange ? "computed" : "left"}): ${part.dx.inside[i]} vs ${want}`,
      );
    }
  }
  assert.equal(part.dataFlops * s.cin, whole.dataFlops * range.count);
}

for (const kernels of KERNEL_FAMILIES) {
  for (const precision of PRECISIONS) {
    // the 1x1 that writes dx straight from the GEMM (f32) and a 3x3 through columns and col2im
    for (const ci of [IN_PLACE_1X1, 7]) {
      const s = CASES[ci];
      const range = { start: 2, count: s.cin / 2 };
      gpuTest(
        `planConv (${kernels} kernels, ${operands(precision)}) computes only dx channels ` +
          `[${range.start}, ${range.start + range.count}) of ${name(s)}, bit for bit as the whole dx`,
        (device) => checkDxChannels(device, kernels, s, range, precision === "f16"),
      );
    }
  }
}

gpuTest("planConv refuses dxChannels outside x's channels", (device) => {
  const s = CASES[IN_PLACE_1X1];
  const [ho, wo] = convOutSize(s);
  const view = (shape: number[]) => place(device, shape, undefined).view;
  assert.throws(
    () =>
      planConv(opContext(device), {
        x: view([s.n, s.cin, s.h, s.w]),
        w: view([s.cout, s.cin, 1, 1]),
        y: view([s.n, s.cout, ho, wo]),
        dy: view([s.n, s.cout, ho, wo]),
        dx: view([s.n, s.cin, s.h, s.w]),
        dxChannels: { start: 4, count: s.cin },
        stride: 1,
        pad: 0,
      }),
    /dxChannels .* are not within x's 6 channels/,
  );
});
