// 2-D convolution (NCHW, groups 1) as GEMMs over an im2col matrix (skipped for 1x1 stride-1 convs, whose
// input already is that matrix). Each GEMM invocation owns an 8x8 block of C in 16 vec4 registers and reads
// its operands straight from global memory: lavapipe runs such register-blocked kernels several times faster
// than ones tiling through workgroup memory. B is read as vec4 (lavapipe's per-lane loads are the
// bottleneck), the epilogue stays in registers (an array-indexed one spilled the tile), and there is no
// integer division per element (lavapipe scalarises it).
//   forward:          Y_n = W . col_n (+ bias)                    gemm_nn, M = Cout, K = Cin*kh*kw, N = Ho*Wo
//   backward_data:    dcol_n = W^T . dY_n, dX = col2im(dcol)       gemm_nn + col2im (1x1 s1: dX = W^T . dY_n)
//                     or, stride 1 on large maps, dX = conv(dY, rotated W^T)                        conv_direct
//   backward_weight:  dW += sum_n dY_n . col_n^T                   gemm_nt (or gemm_nt_lanes) split over
//                                                                  (n, pixel runs) + reduce; with 64+
//                                                                  channels gemm_nn (wgsl/ops/conv_dw_nn.wgsl)
//   bias:             db += sum over batch and pixels of dY        bias_grad
// Matrices with a pixel axis are padded to ppad (a multiple of 4) columns so they can be read as vec4.
// The columns come from wgsl/ops/conv_columns.wgsl (im2col, and col2im back onto dX).
// The GEMM operands (A, A4, B4) are stored as `Elem`, f32 or f16 (amp), by the prelude the loader puts in
// front (src/gpu/wgsl.ts elemPrelude); ldA, ldA4 and ldB4 widen them to f32 as they are read, so every product
// and sum is f32. Src, C, Dst, Bias and Post are always f32.
override WG: u32 = 64u;
// GEMM workgroup shape in invocations (each owns 8x8 of C): chosen per layer so that small M or N (16 output
// channels, 16 taps) do not leave most of a workgroup computing clamped duplicates.
override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
// How gemm_nn reads A: 0 scalar (any strides), 1 vec4 along k (row-major W), 2 vec4 along m (W^T).
override A_MODE: u32 = 0u;
// Kernel size, as constants where a loop over taps must unroll (conv_direct).
override KH: u32 = 3u;
override KW: u32 = 3u;
// Operands that are im2col column matrices in panels of this many vec4 columns (wgsl/ops/conv_panels.wgsl; 0:
// plain rows): B of gemm_nn, gemm_nt and gemm_nt_lanes (rows K, N or N, vec4 columns ldb4), A of gemm_nn with
// A_MODE 1 (rows M, vec4 columns am / 4).
override B_PANEL: u32 = 0u;
override A_PANEL: u32 = 0u;

// #include ops/conv_panels.wgsl

struct Params {
  batch: u32, cin: u32, h: u32, w: u32,
  cout: u32, ho: u32, wo: u32, kh: u32,
  kw: u32, stride: u32, pad: u32, flags: u32, // flags: 1 = add bias (gemm_nn), 2 = accumulate into C / Dst,
  // 4 = gemm_nn also writes silu(C) into Post (a SiLU fused after the conv: its forward costs no pass of its own)
  srcOff: u32, srcBS: u32, dstOff: u32, dstBS: u32,
  rows: u32, ppad: u32, count: u32, pitch: u32, // reduce: element count, invocations per grid row
  M: u32, N: u32, N4: u32, K: u32,
  aOff: u32, am: u32, ak: u32, aBatch: u32,
  bOff4: u32, ldb4: u32, bBatch4: u32, biasOff: u32,
  cOff: u32, ldc: u32, cBatch: u32, splits: u32, // gemm_nt: splits of the pixel axis per batch item
  chunk4: u32, nsplit: u32, srcC: u32, _pad0: u32, // conv_direct: channels of Src (dY) it sums over
  postOff: u32, postBS: u32, _pad1: u32, _pad2: u32, // gemm_nn with flags 4: where silu(C) goes
}

@group(0) @binding(0) var<storage, read> Src: array<f32>;
@group(0) @binding(1) var<storage, read_write> Dst: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<Elem>;
@group(0) @binding(3) var<storage, read> B4: array<vec4<Elem>>;
@group(0) @binding(4) var<storage, read> A4: array<vec4<Elem>>;
@group(0) @binding(5) var<storage, read_write> C: array<f32>;
@group(0) @binding(6) var<storage, read> Bias: array<f32>;
@group(0) @binding(7) var<uniform> u: Params;
@group(0) @binding(9) var<storage, read_write> C4: array<vec4f>;
// A SiLU fused after the conv (src/ops/conv.ts ConvArgs.silu): its output, a view of its own.
@group(0) @binding(10) var<storage, read_write> Post: array<f32>;
@group(0) @binding(11) var<storage, read_write> Post4: array<vec4f>;
// Src as vec4 (conv_direct_rows).
@group(0) @binding(12) var<storage, read> Src4: array<vec4f>;

fn ldA(i: u32) -> f32 { return f32(A[i]); }
fn ldA4(i: u32) -> vec4f { return vec4f(A4[i]); }
fn ldB4(i: u32) -> vec4f { return vec4f(B4[i]); }

// The 8x8 accumulator block as named vec4s (row i = c<i>a for columns 0..3, c<i>b for columns 4..7): named
// fields, unlike a dynamically indexed array, stay in registers.
struct Tile {
  c0a: vec4f, c0b: vec4f, c1a: vec4f, c1b: vec4f, c2a: vec4f, c2b: vec4f, c3a: vec4f, c3b: vec4f,
  c4a: vec4f, c4b: vec4f, c5a: vec4f, c5b: vec4f, c6a: vec4f, c6b: vec4f, c7a: vec4f, c7b: vec4f,
}

// t += outer([a0, a1], [ba, bb]): rows from a0 (0..3) and a1 (4..7), columns from ba (0..3) and bb (4..7).
fn fmaTile(t: ptr<function, Tile>, a0: vec4f, a1: vec4f, ba: vec4f, bb: vec4f) {
  (*t).c0a = fma(vec4f(a0.x), ba, (*t).c0a);
  (*t).c0b = fma(vec4f(a0.x), bb, (*t).c0b);
  (*t).c1a = fma(vec4f(a0.y), ba, (*t).c1a);
  (*t).c1b = fma(vec4f(a0.y), bb, (*t).c1b);
  (*t).c2a = fma(vec4f(a0.z), ba, (*t).c2a);
  (*t).c2b = fma(vec4f(a0.z), bb, (*t).c2b);
  (*t).c3a = fma(vec4f(a0.w), ba, (*t).c3a);
  (*t).c3b = fma(vec4f(a0.w), bb, (*t).c3b);
  (*t).c4a = fma(vec4f(a1.x), ba, (*t).c4a);
  (*t).c4b = fma(vec4f(a1.x), bb, (*t).c4b);
  (*t).c5a = fma(vec4f(a1.y), ba, (*t).c5a);
  (*t).c5b = fma(vec4f(a1.y), bb, (*t).c5b);
  (*t).c6a = fma(vec4f(a1.z), ba, (*t).c6a);
  (*t).c6b = fma(vec4f(a1.z), bb, (*t).c6b);
  (*t).c7a = fma(vec4f(a1.w), ba, (*t).c7a);
  (*t).c7b = fma(vec4f(a1.w), bb, (*t).c7b);
}

const LO = vec4u(0u, 1u, 2u, 3u);
const HI = vec4u(4u, 5u, 6u, 7u);

fn column(m: mat4x4f, k: u32) -> vec4f {
  return vec4f(m[0][k], m[1][k], m[2][k], m[3][k]);
}

// C[z][m][n] (+)= sum_k A[z][m][k] * B[z][k][n] (+ Bias[m]); A read at aOff + z*aBatch + m*am + k*ak (any
// strides, so W and W^T need no copy), B as vec4 rows of ldb4 (or in panels, B_PANEL).
fn nnTile(gi: vec3u) -> Tile {
  let n4 = gi.x * 2u;
  let m0 = gi.y * 8u;
  let z = gi.z;
  // n4 is even and panels start at even columns (B_PANEL is even): both columns lie in one panel.
  let nc = min(n4, u.N4 - 1u);
  let bp = panelOf(B_PANEL, nc, u.K, u.ldb4);
  let ldb4 = bp.width;
  let bBase = u.bOff4 + z * u.bBatch4 + bp.base + nc;
  let second = select(0u, 1u, n4 + 1u < u.N4);
  let aBase = u.aOff + z * u.aBatch;
  var t: Tile;
  if (A_MODE == 1u) {
    // A rows as vec4 along k (ak = 1; aOff, am, K and aBatch multiples of 4): 8 loads per 4 steps instead of
    // 32. Plain rows are am apart; in panels (A_PANEL) each step finds its panel.
    let a4 = aBase / 4u;
    let rows0 = min(vec4u(m0) + LO, vec4u(u.M - 1u));
    let rows1 = min(vec4u(m0) + HI, vec4u(u.M - 1u));
    for (var k4 = 0u; k4 < u.K / 4u; k4++) {
      let ap = panelOf(A_PANEL, k4, u.M, u.am / 4u);
      let q0 = a4 + ap.base + rows0 * ap.width + k4;
      let q1 = a4 + ap.base + rows1 * ap.width + k4;
      let b = bBase + k4 * 4u * ldb4;
      let m0a = mat4x4f(ldA4(q0.x), ldA4(q0.y), ldA4(q0.z), ldA4(q0.w));
      let m1a = mat4x4f(ldA4(q1.x), ldA4(q1.y), ldA4(q1.z), ldA4(q1.w));
      fmaTile(&t, column(m0a, 0u), column(m1a, 0u), ldB4(b), ldB4(b + second));
      fmaTile(&t, column(m0a, 1u), column(m1a, 1u), ldB4(b + ldb4), ldB4(b + ldb4 + second));
      fmaTile(&t, column(m0a, 2u), column(m1a, 2u), ldB4(b + 2u * ldb4), ldB4(b + 2u * ldb4 + second));
      fmaTile(&t, column(m0a, 3u), column(m1a, 3u), ldB4(b + 3u * ldb4), ldB4(b + 3u * ldb4 + second));
    }
  } else if (A_MODE == 2u) {
    // A columns as vec4 along m (am = 1, ak a multiple of 4, e.g. W^T): rows past M read neighbouring
    // values that the epilogue drops.
    let c = (aBase + m0) / 4u;
    let ak4 = u.ak / 4u;
    for (var k = 0u; k < u.K; k++) {
      let b = bBase + k * ldb4;
      fmaTile(&t, ldA4(c + k * ak4), ldA4(c + k * ak4 + 1u), ldB4(b), ldB4(b + second));
    }
  } else {
    let r0 = aBase + min(vec4u(m0) + LO, vec4u(u.M - 1u)) * u.am;
    let r1 = aBase + min(vec4u(m0) + HI, vec4u(u.M - 1u)) * u.am;
    for (var k = 0u; k < u.K; k++) {
      let b = bBase + k * ldb4;
      let ka = k * u.ak;
      let a0 = vec4f(ldA(r0.x + ka), ldA(r0.y + ka), ldA(r0.z + ka), ldA(r0.w + ka));
      let a1 = vec4f(ldA(r1.x + ka), ldA(r1.y + ka), ldA(r1.z + ka), ldA(r1.w + ka));
      fmaTile(&t, a0, a1, ldB4(b), ldB4(b + second));
    }
  }
  return t;
}

@compute @workgroup_size(WG_X, WG_Y)
fn gemm_nn(@builtin(global_invocation_id) gi: vec3u) {
  let t = nnTile(gi);
  let n0 = gi.x * 8u;
  let m0 = gi.y * 8u;
  let row = u.cOff + gi.z * u.cBatch + m0 * u.ldc;
  let prow = u.postOff + gi.z * u.postBS + m0 * u.ldc;
  storeNN(m0, row, prow, n0, t.c0a, t.c0b, biasOf(m0));
  storeNN(m0 + 1u, row + u.ldc, prow + u.ldc, n0, t.c1a, t.c1b, biasOf(m0 + 1u));
  storeNN(m0 + 2u, row + 2u * u.ldc, prow + 2u * u.ldc, n0, t.c2a, t.c2b, biasOf(m0 + 2u));
  storeNN(m0 + 3u, row + 3u * u.ldc, prow + 3u * u.ldc, n0, t.c3a, t.c3b, biasOf(m0 + 3u));
  storeNN(m0 + 4u, row + 4u * u.ldc, prow + 4u * u.ldc, n0, t.c4a, t.c4b, biasOf(m0 + 4u));
  storeNN(m0 + 5u, row + 5u * u.ldc, prow + 5u * u.ldc, n0, t.c5a, t.c5b, biasOf(m0 + 5u));
  storeNN(m0 + 6u, row + 6u * u.ldc, prow + 6u * u.ldc, n0, t.c6a, t.c6b, biasOf(m0 + 6u));
  storeNN(m0 + 7u, row + 7u * u.ldc, prow + 7u * u.ldc, n0, t.c7a, t.c7b, biasOf(m0 + 7u));
}

// gemm_nn for a C whose offset, batch stride and row length are multiples of 4: rows are stored as vec4s
// (columns past N within the last vec4 are row padding, as in the im2col layout).
@compute @workgroup_size(WG_X, WG_Y)
fn gemm_nn_vec4(@builtin(global_invocation_id) gi: vec3u) {
  let t = nnTile(gi);
  let n4 = gi.x * 2u;
  let m0 = gi.y * 8u;
  if (n4 >= u.N4) {
    return;
  }
  let second = n4 + 1u < u.N4;
  let ld4 = u.ldc / 4u;
  let row = (u.cOff + gi.z * u.cBatch) / 4u + m0 * ld4 + n4;
  let prow = (u.postOff + gi.z * u.postBS) / 4u + m0 * ld4 + n4;
  storeNN4(m0, row, prow, second, t.c0a, t.c0b, biasOf(m0));
  storeNN4(m0 + 1u, row + ld4, prow + ld4, second, t.c1a, t.c1b, biasOf(m0 + 1u));
  storeNN4(m0 + 2u, row + 2u * ld4, prow + 2u * ld4, second, t.c2a, t.c2b, biasOf(m0 + 2u));
  storeNN4(m0 + 3u, row + 3u * ld4, prow + 3u * ld4, second, t.c3a, t.c3b, biasOf(m0 + 3u));
  storeNN4(m0 + 4u, row + 4u * ld4, prow + 4u * ld4, second, t.c4a, t.c4b, biasOf(m0 + 4u));
  storeNN4(m0 + 5u, row + 5u * ld4, prow + 5u * ld4, second, t.c5a, t.c5b, biasOf(m0 + 5u));
  storeNN4(m0 + 6u, row + 6u * ld4, prow + 6u * ld4, second, t.c6a, t.c6b, biasOf(m0 + 6u));
  storeNN4(m0 + 7u, row + 7u * ld4, prow + 7u * ld4, second, t.c7a, t.c7b, biasOf(m0 + 7u));
}

fn storeRow4(m: u32, at: u32, second: bool, a: vec4f, b: vec4f, bias: f32) {
  if (m >= u.M) {
    return;
  }
  let accumulate = (u.flags & 2u) != 0u;
  // A branch, not select(): select() would read the destination even when overwriting it.
  if (accumulate) {
    C4[at] += a + bias;
  } else {
    C4[at] = a + bias;
  }
  if (second) {
    // A branch, not select(): select() would read the destination even when overwriting it.
    if (accumulate) {
      C4[at + 1u] += b + bias;
    } else {
      C4[at + 1u] = b + bias;
    }
  }
}

// gemm_nn's stores: storeRow, and with flags 4 also silu of the stored values into Post at prow, computed as
// wgsl/ops/activation.wgsl computes it from the stored value (same f32 results as the unfused pass).
fn storeNN(m: u32, row: u32, prow: u32, n0: u32, a: vec4f, b: vec4f, bias: f32) {
  storeRow(m, row, n0, a, b, bias);
  if ((u.flags & 4u) == 0u || m >= u.M) {
    return;
  }
  let sa = silu(a + bias);
  let sb = silu(b + bias);
  for (var j = 0u; j < 8u; j++) {
    if (n0 + j < u.N) {
      Post[prow + n0 + j] = select(sb[j - 4u], sa[j], j < 4u);
    }
  }
}

fn storeNN4(m: u32, at: u32, pat: u32, second: bool, a: vec4f, b: vec4f, bias: f32) {
  storeRow4(m, at, second, a, b, bias);
  if ((u.flags & 4u) == 0u || m >= u.M) {
    return;
  }
  Post4[pat] = silu(a + bias);
  if (second) {
    Post4[pat + 1u] = silu(b + bias);
  }
}

fn silu(x: vec4f) -> vec4f {
  return x * (1.0 / (1.0 + exp(-x)));
}

fn biasOf(m: u32) -> f32 {
  if ((u.flags & 1u) == 0u) {
    return 0.0;
  }
  return Bias[u.biasOff + min(m, u.M - 1u)];
}

// C[row + n0 .. n0 + 7] (+)= [a, b] + bias for the columns below N, when row m exists.
fn storeRow(m: u32, row: u32, n0: u32, a: vec4f, b: vec4f, bias: f32) {
  if (m >= u.M) {
    return;
  }
  let accumulate = (u.flags & 2u) != 0u;
  for (var j = 0u; j < 8u; j++) {
    let n = n0 + j;
    if (n < u.N) {
      let v = select(b[j - 4u], a[j], j < 4u);
      // A branch, not select(): select() would read the destination even when overwriting it.
      if (accumulate) {
        C[row + n] += v + bias;
      } else {
        C[row + n] = v + bias;
      }
    }
  }
}

// Part[z][m][n] = sum over r4 in split z of dot(A4[m][r4], B4[n][r4]), z = batch item * splits + split:
// the weight gradient's reduction over batch and pixels, cut into pieces that run in parallel.
@compute @workgroup_size(WG_X, WG_Y)
fn gemm_nt(@builtin(global_invocation_id) gi: vec3u) {
  let n0 = gi.x * 8u;
  let m0 = gi.y * 8u;
  let z = gi.z;
  let item = z / u.splits;
  let s0 = (z % u.splits) * u.chunk4;
  let s1 = min(s0 + u.chunk4, u.K);
  let ar0 = u.aOff + item * u.aBatch + min(vec4u(m0) + LO, vec4u(u.M - 1u)) * u.am;
  let ar1 = u.aOff + item * u.aBatch + min(vec4u(m0) + HI, vec4u(u.M - 1u)) * u.am;
  let bItem = u.bOff4 + item * u.bBatch4;
  let bRows0 = min(vec4u(n0) + LO, vec4u(u.N - 1u));
  let bRows1 = min(vec4u(n0) + HI, vec4u(u.N - 1u));
  var t: Tile;
  for (var r = s0; r < s1; r++) {
    // Rows of A and B as 4x4 blocks (one matrix column per row); their transposes give per-k vectors.
    let am0 = mat4x4f(ldA4(ar0.x + r), ldA4(ar0.y + r), ldA4(ar0.z + r), ldA4(ar0.w + r));
    let am1 = mat4x4f(ldA4(ar1.x + r), ldA4(ar1.y + r), ldA4(ar1.z + r), ldA4(ar1.w + r));
    let bp = panelOf(B_PANEL, r, u.N, u.ldb4);
    let br0 = bItem + bp.base + bRows0 * bp.width + r;
    let br1 = bItem + bp.base + bRows1 * bp.width + r;
    let bm0 = mat4x4f(ldB4(br0.x), ldB4(br0.y), ldB4(br0.z), ldB4(br0.w));
    let bm1 = mat4x4f(ldB4(br1.x), ldB4(br1.y), ldB4(br1.z), ldB4(br1.w));
    for (var k = 0u; k < 4u; k++) {
      fmaTile(&t, column(am0, k), column(am1, k), column(bm0, k), column(bm1, k));
    }
  }
  let row = (z * u.M + m0) * u.N;
  storeRow(m0, row, n0, t.c0a, t.c0b, 0.0);
  storeRow(m0 + 1u, row + u.N, n0, t.c1a, t.c1b, 0.0);
  storeRow(m0 + 2u, row + 2u * u.N, n0, t.c2a, t.c2b, 0.0);
  storeRow(m0 + 3u, row + 3u * u.N, n0, t.c3a, t.c3b, 0.0);
  storeRow(m0 + 4u, row + 4u * u.N, n0, t.c4a, t.c4b, 0.0);
  storeRow(m0 + 5u, row + 5u * u.N, n0, t.c5a, t.c5b, 0.0);
  storeRow(m0 + 6u, row + 6u * u.N, n0, t.c6a, t.c6b, 0.0);
  storeRow(m0 + 7u, row + 7u * u.N, n0, t.c7a, t.c7b, 0.0);
}

fn linear(g: vec3u) -> u32 {
  return g.x + g.y * u.pitch;
}

// Dst[dstOff + e] += sum over z of Src[(z * count) + e]: adds the split partial sums into the gradients.
@compute @workgroup_size(WG)
fn reduce(@builtin(global_invocation_id) g: vec3u) {
  let e = linear(g);
  if (e >= u.count) {
    return;
  }
  var sum = 0.0;
  for (var z = 0u; z < u.nsplit; z++) {
    sum += Src[z * u.count + e];
  }
  Dst[u.dstOff + e] += sum;
}

var<workgroup> partial: array<f32, WG>;

// Dst[dstOff + co] += sum over batch and pixels of dY[n][co] (Src rows at srcOff + n*srcBS + co*Ho*Wo), one
// workgroup per output channel.
@compute @workgroup_size(WG)
fn bias_grad(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let co = wg.x;
  let P = u.ho * u.wo;
  var sum = 0.0;
  for (var n = 0u; n < u.batch; n++) {
    let row = u.srcOff + n * u.srcBS + co * P;
    for (var p = l.x; p < P; p += WG) {
      sum += Src[row + p];
    }
  }
  partial[l.x] = sum;
  for (var span = WG / 2u; span > 0u; span /= 2u) {
    workgroupBarrier();
    if (l.x < span) {
      partial[l.x] += partial[l.x + span];
    }
  }
  if (l.x == 0u) {
    Dst[u.dstOff + co] += partial[0];
  }
}

var<workgroup> laneTiles: array<vec4f, 128>;

// gemm_nt with the 8 lanes of a workgroup sharing one 8x8 tile of C and interleaving its pixel run (lane l takes
// vec4 columns s0 + l, s0 + l + 8, ...): the lanes then read neighbouring vec4s of the same 16 rows instead of
// 8 tiles' 128 rows, and the 8 partial tiles are added through workgroup memory at the end.
@compute @workgroup_size(8)
fn gemm_nt_lanes(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let n0 = wg.x * 8u;
  let m0 = wg.y * 8u;
  let z = wg.z;
  let item = z / u.splits;
  let s0 = (z % u.splits) * u.chunk4;
  let s1 = min(s0 + u.chunk4, u.K);
  let ar0 = u.aOff + item * u.aBatch + min(vec4u(m0) + LO, vec4u(u.M - 1u)) * u.am;
  let ar1 = u.aOff + item * u.aBatch + min(vec4u(m0) + HI, vec4u(u.M - 1u)) * u.am;
  let bItem = u.bOff4 + item * u.bBatch4;
  let bRows0 = min(vec4u(n0) + LO, vec4u(u.N - 1u));
  let bRows1 = min(vec4u(n0) + HI, vec4u(u.N - 1u));
  var t: Tile;
  for (var r = s0 + l.x; r < s1; r += 8u) {
    let am0 = mat4x4f(ldA4(ar0.x + r), ldA4(ar0.y + r), ldA4(ar0.z + r), ldA4(ar0.w + r));
    let am1 = mat4x4f(ldA4(ar1.x + r), ldA4(ar1.y + r), ldA4(ar1.z + r), ldA4(ar1.w + r));
    let bp = panelOf(B_PANEL, r, u.N, u.ldb4);
    let br0 = bItem + bp.base + bRows0 * bp.width + r;
    let br1 = bItem + bp.base + bRows1 * bp.width + r;
    let bm0 = mat4x4f(ldB4(br0.x), ldB4(br0.y), ldB4(br0.z), ldB4(br0.w));
    let bm1 = mat4x4f(ldB4(br1.x), ldB4(br1.y), ldB4(br1.z), ldB4(br1.w));
    for (var k = 0u; k < 4u; k++) {
      fmaTile(&t, column(am0, k), column(am1, k), column(bm0, k), column(bm1, k));
    }
  }
  let o = l.x * 16u;
  laneTiles[o] = t.c0a;
  laneTiles[o + 1u] = t.c0b;
  laneTiles[o + 2u] = t.c1a;
  laneTiles[o + 3u] = t.c1b;
  laneTiles[o + 4u] = t.c2a;
  laneTiles[o + 5u] = t.c2b;
  laneTiles[o + 6u] = t.c3a;
  laneTiles[o + 7u] = t.c3b;
  laneTiles[o + 8u] = t.c4a;
  laneTiles[o + 9u] = t.c4b;
  laneTiles[o + 10u] = t.c5a;
  laneTiles[o + 11u] = t.c5b;
  laneTiles[o + 12u] = t.c6a;
  laneTiles[o + 13u] = t.c6b;
  laneTiles[o + 14u] = t.c7a;
  laneTiles[o + 15u] = t.c7b;
  workgroupBarrier();
  // Lane j adds row j of the 8 partial tiles.
  var sa = vec4f();
  var sb = vec4f();
  for (var q = 0u; q < 8u; q++) {
    sa += laneTiles[q * 16u + 2u * l.x];
    sb += laneTiles[q * 16u + 2u * l.x + 1u];
  }
  storeRow(m0 + l.x, (z * u.M + m0 + l.x) * u.N, n0, sa, sb, 0.0);
}

// Direct (implicit-GEMM) convolution: C[z][m][p] (+)= sum over channels c and taps (ky, kx) of
// A[m, c, tap] * Src[z][c][iy][ix], with (iy, ix) = (oy, ox) + (ky, kx) - pad, zero outside the h x w input.
// It reads the input where im2col would copy it: lavapipe gathers per lane either way, so on large maps with
// few channels this costs no more than the GEMM while the columns are never written. A is read at
// aOff + m*am + c*ak + (KH*KW-1 - (ky*KW + kx)): with am = KH*KW and ak = Cin*KH*KW that is the transposed,
// 180-degree-rotated weight, which turns a stride-1 conv's backward-data into this conv of dY (no dcol, no
// col2im). Each invocation owns 8 output rows (m) x 8 consecutive output pixels, like the GEMMs.
fn directTile(gi: vec3u) -> Tile {
  let n0 = gi.x * 8u;
  let m0 = gi.y * 8u;
  let P = u.ho * u.wo;
  // Input row and column of each pixel's first tap; pixels past P are clamped (their results are dropped).
  let p0 = min(vec4u(n0) + LO, vec4u(P - 1u));
  let p1 = min(vec4u(n0) + HI, vec4u(P - 1u));
  let y0 = vec4i(p0 / u.wo) - i32(u.pad);
  let y1 = vec4i(p1 / u.wo) - i32(u.pad);
  let x0 = vec4i(p0 % u.wo) - i32(u.pad);
  let x1 = vec4i(p1 % u.wo) - i32(u.pad);
  let r0 = u.aOff + min(vec4u(m0) + LO, vec4u(u.M - 1u)) * u.am;
  let r1 = u.aOff + min(vec4u(m0) + HI, vec4u(u.M - 1u)) * u.am;
  let src = u.srcOff + gi.z * u.srcBS;
  let plane = u.h * u.w;
  var t: Tile;
  for (var ky = 0u; ky < KH; ky++) {
    for (var kx = 0u; kx < KW; kx++) {
      let iy0 = y0 + i32(ky);
      let iy1 = y1 + i32(ky);
      let ix0 = x0 + i32(kx);
      let ix1 = x1 + i32(kx);
      let in0 = vec4u(iy0) < vec4u(u.h) & vec4u(ix0) < vec4u(u.w);
      let in1 = vec4u(iy1) < vec4u(u.h) & vec4u(ix1) < vec4u(u.w);
      // Taps outside the input read the plane's first pixel; their values are zeroed below.
      let o0 = select(vec4u(0u), vec4u(iy0 * i32(u.w) + ix0), in0) + src;
      let o1 = select(vec4u(0u), vec4u(iy1 * i32(u.w) + ix1), in1) + src;
      let tw = KH * KW - 1u - (ky * KW + kx);
      let q0 = r0 + tw;
      let q1 = r1 + tw;
      for (var c = 0u; c < u.srcC; c++) {
        let pc = c * plane;
        let ac = c * u.ak;
        let a0 = vec4f(ldA(q0.x + ac), ldA(q0.y + ac), ldA(q0.z + ac), ldA(q0.w + ac));
        let a1 = vec4f(ldA(q1.x + ac), ldA(q1.y + ac), ldA(q1.z + ac), ldA(q1.w + ac));
        let b0 = vec4f(Src[o0.x + pc], Src[o0.y + pc], Src[o0.z + pc], Src[o0.w + pc]);
        let b1 = vec4f(Src[o1.x + pc], Src[o1.y + pc], Src[o1.z + pc], Src[o1.w + pc]);
        fmaTile(&t, a0, a1, select(vec4f(), b0, in0), select(vec4f(), b1, in1));
      }
    }
  }
  return t;
}

@compute @workgroup_size(WG_X, WG_Y)
fn conv_direct(@builtin(global_invocation_id) gi: vec3u) {
  let t = directTile(gi);
  let n0 = gi.x * 8u;
  let m0 = gi.y * 8u;
  let row = u.cOff + gi.z * u.cBatch + m0 * u.ldc;
  storeRow(m0, row, n0, t.c0a, t.c0b, 0.0);
  storeRow(m0 + 1u, row + u.ldc, n0, t.c1a, t.c1b, 0.0);
  storeRow(m0 + 2u, row + 2u * u.ldc, n0, t.c2a, t.c2b, 0.0);
  storeRow(m0 + 3u, row + 3u * u.ldc, n0, t.c3a, t.c3b, 0.0);
  storeRow(m0 + 4u, row + 4u * u.ldc, n0, t.c4a, t.c4b, 0.0);
  storeRow(m0 + 5u, row + 5u * u.ldc, n0, t.c5a, t.c5b, 0.0);
  storeRow(m0 + 6u, row + 6u * u.ldc, n0, t.c6a, t.c6b, 0.0);
  storeRow(m0 + 7u, row + 7u * u.ldc, n0, t.c7a, t.c7b, 0.0);
}

// conv_direct for an output whose offset, batch stride and row length (ldc) are multiples of 4: vec4 stores.
@compute @workgroup_size(WG_X, WG_Y)
fn conv_direct_vec4(@builtin(global_invocation_id) gi: vec3u) {
  let t = directTile(gi);
  let n4 = gi.x * 2u;
  let m0 = gi.y * 8u;
  if (n4 >= u.N4) {
    return;
  }
  let second = n4 + 1u < u.N4;
  let ld4 = u.ldc / 4u;
  let row = (u.cOff + gi.z * u.cBatch) / 4u + m0 * ld4 + n4;
  storeRow4(m0, row, second, t.c0a, t.c0b, 0.0);
  storeRow4(m0 + 1u, row + ld4, second, t.c1a, t.c1b, 0.0);
  storeRow4(m0 + 2u, row + 2u * ld4, second, t.c2a, t.c2b, 0.0);
  storeRow4(m0 + 3u, row + 3u * ld4, second, t.c3a, t.c3b, 0.0);
  storeRow4(m0 + 4u, row + 4u * ld4, second, t.c4a, t.c4b, 0.0);
  storeRow4(m0 + 5u, row + 5u * ld4, second, t.c5a, t.c5b, 0.0);
  storeRow4(m0 + 6u, row + 6u * ld4, second, t.c6a, t.c6b, 0.0);
  storeRow4(m0 + 7u, row + 7u * ld4, second, t.c7a, t.c7b, 0.0);
}

// conv_direct for a 3-wide kernel with padding 1 on maps whose rows hold whole 8-pixel tiles (w a multiple of 8,
// Src's planes 4-aligned): each invocation's 8 output pixels lie in one row, so per input row and channel four
// aligned vec4 loads (pixels ox - 4 .. ox + 11) hold the three horizontal taps of all 8 pixels, where
// conv_direct gathers 24 values one lane at a time. Pixels left of the row (ox = 0) and right of it
// (ox + 8 = w), and rows outside the input, are zero. The weights are read as vec4 along m from A4, the
// kernel transposed to [c][tap][m] (m padded to a multiple of 4): tap t of channel c for rows m0.. at
// aOff + c * ak + t * am + m0 / 4 (vec4 units); rows past the padding read the next tap's, which the store
// drops with the rows past M.
fn directRowsTile(gi: vec3u) -> Tile {
  let m0 = gi.y * 8u;
  // Tiles past the map (the grid's last workgroup) recompute the last tile; their results are dropped.
  let p = min(gi.x * 8u, u.ho * u.wo - 8u);
  let oy = p / u.wo;
  let ox = p % u.wo;
  let hasLeft = ox > 0u;
  let hasRight = ox + 8u < u.w;
  let plane4 = u.h * u.w / 4u;
  let src4 = (u.srcOff + gi.z * u.srcBS) / 4u + ox / 4u;
  var t: Tile;
  for (var ky = 0u; ky < KH; ky++) {
    let iy = i32(oy + ky) - i32(u.pad);
    let inRow = u32(iy) < u.h;
    let row4 = src4 + u32(clamp(iy, 0, i32(u.h) - 1)) * (u.w / 4u);
    // The weight of tap (ky, kx) is read rotated, as conv_direct reads it.
    let q = u.aOff + (KH * KW - 1u - ky * KW) * u.am + m0 / 4u;
    for (var c = 0u; c < u.srcC; c++) {
      let at = row4 + c * plane4;
      let mid0 = select(vec4f(), Src4[at], inRow);
      let mid1 = select(vec4f(), Src4[at + 1u], inRow);
      let left = select(vec4f(), Src4[at - select(0u, 1u, hasLeft)], inRow && hasLeft);
      let right = select(vec4f(), Src4[at + select(1u, 2u, hasRight)], inRow && hasRight);
      let qc = q + c * u.ak;
      for (var kx = 0u; kx < 3u; kx++) {
        let a0 = ldA4(qc - kx * u.am);
        let a1 = ldA4(qc - kx * u.am + 1u);
        // Pixel ox + j reads input pixel ox + j + kx - 1.
        var b0 = mid0;
        var b1 = mid1;
        if (kx == 0u) {
          b0 = vec4f(left.w, mid0.xyz);
          b1 = vec4f(mid0.w, mid1.xyz);
        } else if (kx == 2u) {
          b0 = vec4f(mid0.yzw, mid1.x);
          b1 = vec4f(mid1.yzw, right.x);
        }
        fmaTile(&t, a0, a1, b0, b1);
      }
    }
  }
  return t;
}

@compute @workgroup_size(WG_X, WG_Y)
fn conv_direct_rows(@builtin(global_invocation_id) gi: vec3u) {
  let t = directRowsTile(gi);
  let n4 = gi.x * 2u;
  let m0 = gi.y * 8u;
  if (n4 >= u.N4) {
    return;
  }
  let ld4 = u.ldc / 4u;
  let row = (u.cOff + gi.z * u.cBatch) / 4u + m0 * ld4 + n4;
  storeRow4(m0, row, true, t.c0a, t.c0b, 0.0);
  storeRow4(m0 + 1u, row + ld4, true, t.c1a, t.c1b, 0.0);
  storeRow4(m0 + 2u, row + 2u * ld4, true, t.c2a, t.c2b, 0.0);
  storeRow4(m0 + 3u, row + 3u * ld4, true, t.c3a, t.c3b, 0.0);
  storeRow4(m0 + 4u, row + 4u * ld4, true, t.c4a, t.c4b, 0.0);
  storeRow4(m0 + 5u, row + 5u * ld4, true, t.c5a, t.c5b, 0.0);
  storeRow4(m0 + 6u, row + 6u * ld4, true, t.c6a, t.c6b, 0.0);
  storeRow4(m0 + 7u, row + 7u * ld4, true, t.c7a, t.c7b, 0.0);
}
