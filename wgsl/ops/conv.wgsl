// 2-D convolution (NCHW, groups 1) as GEMMs over an im2col matrix (skipped for 1x1 stride-1 convs, whose
// input already is that matrix), in the register family (wgsl/ops/conv_common.wgsl: 8x8 per invocation). B is
// read as vec4 (lavapipe's per-lane loads are the bottleneck).
//   forward:          Y_n = W . col_n (+ bias)                    gemm_nn, M = Cout, K = Cin*kh*kw, N = Ho*Wo
//   backward_data:    dcol_n = W^T . dY_n, dX = col2im(dcol)       gemm_nn + col2im (1x1 s1: dX = W^T . dY_n)
//                     or, stride 1 on large maps, dX = conv(dY, rotated W^T)       wgsl/ops/conv_direct.wgsl
//   backward_weight:  dW += sum_n dY_n . col_n^T                   gemm_nt (or gemm_nt_lanes) split over
//                                                                  (n, pixel runs) + reduce; with 64+
//                                                                  channels gemm_nn (wgsl/ops/conv_dw_nn.wgsl)
//   bias:             db += sum over batch and pixels of dY        bias_grad
// Matrices with a pixel axis are padded to ppad (a multiple of 4) columns so they can be read as vec4.
// The columns come from wgsl/ops/conv_columns.wgsl (im2col, and col2im back onto dX).
override WG: u32 = 64u;
// How gemm_nn reads A: 0 scalar (any strides), 1 vec4 along k (row-major W), 2 vec4 along m (W^T).
override A_MODE: u32 = 0u;
// Operands that are im2col column matrices in panels of this many vec4 columns (wgsl/ops/conv_panels.wgsl; 0:
// plain rows): B of gemm_nn, gemm_nt and gemm_nt_lanes (rows K, N or N, vec4 columns ldb4), A of gemm_nn with
// A_MODE 1 (rows M, vec4 columns am / 4).
override B_PANEL: u32 = 0u;
override A_PANEL: u32 = 0u;
// gemm_nn: batch items whose products one invocation sums into its C (z = gi.z * Z_SUM onwards): the transposed
// weight gradient's per-image partial sums folded (src/ops/conv_weight_grad.ts).
override Z_SUM: u32 = 1u;

// #include ops/conv_common.wgsl
// #include ops/conv_panels.wgsl

// C[z][m][n] (+)= sum_k A[z][m][k] * B[z][k][n] (+ Bias[m]); A read at aOff + z*aBatch + m*am + k*ak (any
// strides, so W and W^T need no copy), B as vec4 rows of ldb4 (or in panels, B_PANEL). With Z_SUM > 1, C[z]
// sums the products of batch items z * Z_SUM onwards.
fn nnTile(gi: vec3u) -> Tile {
  let n4 = gi.x * 2u;
  let m0 = gi.y * 8u;
  // n4 is even and panels start at even columns (B_PANEL is even): both columns lie in one panel.
  let nc = min(n4, u.N4 - 1u);
  let bp = panelOf(B_PANEL, nc, u.K, u.ldb4);
  let second = select(0u, 1u, n4 + 1u < u.N4);
  var t: Tile;
  // Without a sum, no loop: even a one-trip loop ran the forward GEMMs 8% slower on lavapipe.
  if (Z_SUM == 1u) {
    nnAccumulate(&t, gi.z, m0, bp.base + nc, bp.width, second);
    return t;
  }
  for (var z = gi.z * Z_SUM; z < gi.z * Z_SUM + Z_SUM; z++) {
    nnAccumulate(&t, z, m0, bp.base + nc, bp.width, second);
  }
  return t;
}

// t += A[z] . B[z] for the tile's rows from m0 and its vec4 columns from B's column `col` (rows ldb4 apart;
// `second` 1 where the tile's second vec4 column exists).
fn nnAccumulate(t: ptr<function, Tile>, z: u32, m0: u32, col: u32, ldb4: u32, second: u32) {
  let bBase = u.bOff4 + z * u.bBatch4 + col;
  let aBase = u.aOff + z * u.aBatch;
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
      fmaTile(t, column(m0a, 0u), column(m1a, 0u), ldB4(b), ldB4(b + second));
      fmaTile(t, column(m0a, 1u), column(m1a, 1u), ldB4(b + ldb4), ldB4(b + ldb4 + second));
      fmaTile(t, column(m0a, 2u), column(m1a, 2u), ldB4(b + 2u * ldb4), ldB4(b + 2u * ldb4 + second));
      fmaTile(t, column(m0a, 3u), column(m1a, 3u), ldB4(b + 3u * ldb4), ldB4(b + 3u * ldb4 + second));
    }
  } else if (A_MODE == 2u) {
    // A columns as vec4 along m (am = 1, ak a multiple of 4, e.g. W^T): rows past M read neighbouring
    // values that the epilogue drops.
    let c = (aBase + m0) / 4u;
    let ak4 = u.ak / 4u;
    for (var k = 0u; k < u.K; k++) {
      let b = bBase + k * ldb4;
      fmaTile(t, ldA4(c + k * ak4), ldA4(c + k * ak4 + 1u), ldB4(b), ldB4(b + second));
    }
  } else {
    let r0 = aBase + min(vec4u(m0) + LO, vec4u(u.M - 1u)) * u.am;
    let r1 = aBase + min(vec4u(m0) + HI, vec4u(u.M - 1u)) * u.am;
    for (var k = 0u; k < u.K; k++) {
      let b = bBase + k * ldb4;
      let ka = k * u.ak;
      let a0 = vec4f(ldA(r0.x + ka), ldA(r0.y + ka), ldA(r0.z + ka), ldA(r0.w + ka));
      let a1 = vec4f(ldA(r1.x + ka), ldA(r1.y + ka), ldA(r1.z + ka), ldA(r1.w + ka));
      fmaTile(t, a0, a1, ldB4(b), ldB4(b + second));
    }
  }
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
