// 2-D convolution (NCHW, groups 1) as GEMMs over an im2col matrix (skipped for 1x1 stride-1 convs, whose input
// already is that matrix). GEMM invocations each own an 8x8 block of C in 16 vec4 registers and read operands
// straight from global memory, because lavapipe runs register-blocked kernels several times faster than ones that
// tile through workgroup memory. Its per-lane loads are the bottleneck, so: the 8 rows of a block come from the
// workgroup id (their A loads are uniform, one scalar load for the whole SIMD group) and B is read as vec4.
//   forward:          Y_n = W . col_n (+ bias)                       gemm_nn, M = Cout, K = Cin*kh*kw, N = Ho*Wo
//   backward_data:    dcol_n = W^T . dY_n, then dX = col2im(dcol)      gemm_nn + col2im (1x1 s1: dX = W^T . dY_n)
//   backward_weight:  dW += sum_n dY_n . col_n^T                      gemm_nt split over (n, pixel chunks) + reduce
//   bias:             db += sum over batch and pixels of dY           bias_grad
// Matrices with a pixel axis are padded to ppad (a multiple of 4) columns so they can be read as vec4.
override WG: u32 = 64u;

struct Params {
  batch: u32, cin: u32, h: u32, w: u32,
  cout: u32, ho: u32, wo: u32, kh: u32,
  kw: u32, stride: u32, pad: u32, flags: u32, // flags: 1 = add bias (gemm_nn), 2 = accumulate into C / Dst
  srcOff: u32, srcBS: u32, dstOff: u32, dstBS: u32,
  rows: u32, ppad: u32, count: u32, pitch: u32, // im2col/col2im/reduce: element count, invocations per grid row
  M: u32, N: u32, N4: u32, K: u32,
  aOff: u32, am: u32, ak: u32, aBatch: u32,
  bOff4: u32, ldb4: u32, bBatch4: u32, biasOff: u32,
  cOff: u32, ldc: u32, cBatch: u32, splits: u32, // gemm_nt: splits of the pixel axis per batch item
  chunk4: u32, nsplit: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read> Src: array<f32>;
@group(0) @binding(1) var<storage, read_write> Dst: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B4: array<vec4f>;
@group(0) @binding(4) var<storage, read> A4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> C: array<f32>;
@group(0) @binding(6) var<storage, read> Bias: array<f32>;
@group(0) @binding(7) var<uniform> u: Params;

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

// The tile as an indexable array for the epilogue (element 2 * row + column / 4).
fn tileArray(t: Tile) -> array<vec4f, 16> {
  return array<vec4f, 16>(t.c0a, t.c0b, t.c1a, t.c1b, t.c2a, t.c2b, t.c3a, t.c3b, t.c4a, t.c4b, t.c5a, t.c5b,
    t.c6a, t.c6b, t.c7a, t.c7b);
}

const LO = vec4u(0u, 1u, 2u, 3u);
const HI = vec4u(4u, 5u, 6u, 7u);

fn column(m: mat4x4f, k: u32) -> vec4f {
  return vec4f(m[0][k], m[1][k], m[2][k], m[3][k]);
}

// C[z][m][n] (+)= sum_k A[z][m][k] * B[z][k][n] (+ Bias[m]); A read at aOff + z*aBatch + m*am + k*ak (any
// strides, so W and W^T need no copy), B as vec4 rows of ldb4. Rows m0..m0+7 from workgroup_id.y (uniform).
@compute @workgroup_size(WG)
fn gemm_nn(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let n4 = (wg.x * WG + l.x) * 2u;
  let m0 = wg.y * 8u;
  let z = wg.z;
  if (n4 >= u.N4) {
    return;
  }
  let bBase = u.bOff4 + z * u.bBatch4 + n4;
  let second = select(0u, 1u, n4 + 1u < u.N4);
  let aBase = u.aOff + z * u.aBatch;
  let r0 = aBase + min(vec4u(m0) + LO, vec4u(u.M - 1u)) * u.am;
  let r1 = aBase + min(vec4u(m0) + HI, vec4u(u.M - 1u)) * u.am;
  var t: Tile;
  for (var k = 0u; k < u.K; k++) {
    let b = bBase + k * u.ldb4;
    let ka = k * u.ak;
    let a0 = vec4f(A[r0.x + ka], A[r0.y + ka], A[r0.z + ka], A[r0.w + ka]);
    let a1 = vec4f(A[r1.x + ka], A[r1.y + ka], A[r1.z + ka], A[r1.w + ka]);
    fmaTile(&t, a0, a1, B4[b], B4[b + second]);
  }
  let acc = tileArray(t);
  let accumulate = (u.flags & 2u) != 0u;
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + i;
    if (m < u.M) {
      let bias = select(0.0, Bias[u.biasOff + m], (u.flags & 1u) != 0u);
      let row = u.cOff + z * u.cBatch + m * u.ldc;
      for (var j = 0u; j < 8u; j++) {
        let n = n4 * 4u + j;
        if (n < u.N) {
          C[row + n] = acc[2u * i + j / 4u][j % 4u] + bias + select(0.0, C[row + n], accumulate);
        }
      }
    }
  }
}

// Part[z][m][n] = sum over r4 in split z of dot(A4[m][r4], B4[n][r4]), z = batch item * splits + split:
// the weight gradient's reduction over batch and pixels, cut into pieces that run in parallel.
@compute @workgroup_size(WG)
fn gemm_nt(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let n0 = (wg.x * WG + l.x) * 8u;
  let m0 = wg.y * 8u;
  let z = wg.z;
  if (n0 >= u.N) {
    return;
  }
  let item = z / u.splits;
  let s0 = (z % u.splits) * u.chunk4;
  let s1 = min(s0 + u.chunk4, u.K);
  let ar0 = u.aOff + item * u.aBatch + min(vec4u(m0) + LO, vec4u(u.M - 1u)) * u.am;
  let ar1 = u.aOff + item * u.aBatch + min(vec4u(m0) + HI, vec4u(u.M - 1u)) * u.am;
  let br0 = u.bOff4 + item * u.bBatch4 + min(vec4u(n0) + LO, vec4u(u.N - 1u)) * u.ldb4;
  let br1 = u.bOff4 + item * u.bBatch4 + min(vec4u(n0) + HI, vec4u(u.N - 1u)) * u.ldb4;
  var t: Tile;
  for (var r = s0; r < s1; r++) {
    // Rows of A and B as 4x4 blocks (one matrix column per row); their transposes give per-k vectors.
    let am0 = mat4x4f(A4[ar0.x + r], A4[ar0.y + r], A4[ar0.z + r], A4[ar0.w + r]);
    let am1 = mat4x4f(A4[ar1.x + r], A4[ar1.y + r], A4[ar1.z + r], A4[ar1.w + r]);
    let bm0 = mat4x4f(B4[br0.x + r], B4[br0.y + r], B4[br0.z + r], B4[br0.w + r]);
    let bm1 = mat4x4f(B4[br1.x + r], B4[br1.y + r], B4[br1.z + r], B4[br1.w + r]);
    for (var k = 0u; k < 4u; k++) {
      fmaTile(&t, column(am0, k), column(am1, k), column(bm0, k), column(bm1, k));
    }
  }
  let acc = tileArray(t);
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + i;
    if (m < u.M) {
      for (var j = 0u; j < 8u; j++) {
        let n = n0 + j;
        if (n < u.N) {
          C[(z * u.M + m) * u.N + n] = acc[2u * i + j / 4u][j % 4u];
        }
      }
    }
  }
}

fn linear(g: vec3u) -> u32 {
  return g.x + g.y * u.pitch;
}

// Dst[dstOff + e] for e = ((n * rows) + k) * ppad + p: the input pixel tap k = (ci, ky, kx) of output pixel p,
// zero in the padding and for p >= Ho*Wo. With a 1x1 kernel this is a copy into rows padded to ppad.
@compute @workgroup_size(WG)
fn im2col(@builtin(global_invocation_id) g: vec3u) {
  let e = linear(g);
  if (e >= u.count) {
    return;
  }
  let p = e % u.ppad;
  let k = (e / u.ppad) % u.rows;
  let n = e / (u.ppad * u.rows);
  let khw = u.kh * u.kw;
  let iy = i32((p / u.wo) * u.stride + (k % khw) / u.kw) - i32(u.pad);
  let ix = i32((p % u.wo) * u.stride + k % u.kw) - i32(u.pad);
  let inside = p < u.ho * u.wo && u32(iy) < u.h && u32(ix) < u.w;
  let at = u.srcOff + n * u.srcBS + (k / khw) * u.h * u.w + u32(iy) * u.w + u32(ix);
  Dst[u.dstOff + e] = select(0.0, Src[min(at, arrayLength(&Src) - 1u)], inside);
}

// dX[n][ci][iy][ix] (+)= sum of dcol[n][(ci, ky, kx)][(oy, ox)] over the taps that read this input pixel.
@compute @workgroup_size(WG)
fn col2im(@builtin(global_invocation_id) g: vec3u) {
  let e = linear(g);
  if (e >= u.count) {
    return;
  }
  let hw = u.h * u.w;
  let ix = e % u.w;
  let iy = (e / u.w) % u.h;
  let ci = (e / hw) % u.cin;
  let n = e / (hw * u.cin);
  let khw = u.kh * u.kw;
  var sum = 0.0;
  for (var ky = 0u; ky < u.kh; ky++) {
    let ty = i32(iy + u.pad) - i32(ky);
    let oy = u32(ty) / u.stride;
    if (ty < 0 || u32(ty) % u.stride != 0u || oy >= u.ho) {
      continue;
    }
    for (var kx = 0u; kx < u.kw; kx++) {
      let tx = i32(ix + u.pad) - i32(kx);
      let ox = u32(tx) / u.stride;
      if (tx < 0 || u32(tx) % u.stride != 0u || ox >= u.wo) {
        continue;
      }
      sum += Src[((n * u.rows + ci * khw + ky * u.kw + kx) * u.ppad) + oy * u.wo + ox];
    }
  }
  let at = u.dstOff + n * u.dstBS + ci * hw + iy * u.w + ix;
  Dst[at] = sum + select(0.0, Dst[at], (u.flags & 2u) != 0u);
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
