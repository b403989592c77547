// What the register family's conv kernels share (wgsl/ops/conv.wgsl, wgsl/ops/conv_direct.wgsl include it):
// their Params uniform and bindings (each entry point uses its own subset), and the 8x8 tile of C each
// invocation owns in 16 vec4 registers, read straight from global memory: lavapipe runs such register-blocked
// kernels several times faster than ones tiling through workgroup memory. The epilogue stays in registers (an
// array-indexed one spilled the tile), and there is no integer division per element (lavapipe scalarises it).
// The GEMM operands (A, A4, B4) are stored as `Elem`, f32 or f16 (amp), by the prelude the loader puts in
// front (src/gpu/wgsl.ts elemPrelude); ldA, ldA4 and ldB4 widen them to f32 as they are read, so every product
// and sum is f32. Src, Src4, C, C4, Dst, Bias and Post are always f32.
// Workgroup shape in invocations (each owns 8x8 of C): chosen per layer so that small M or N (16 output
// channels, 16 taps) do not leave most of a workgroup computing clamped duplicates.
override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

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

// C4[at], and C4[at + 1] when `second`, (+)= [a, b] + bias, when row m exists.
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
