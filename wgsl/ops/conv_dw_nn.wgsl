// The weight gradient of a conv with many output channels as gemm_nn (wgsl/ops/conv.wgsl) on transposed
// operands: Part[z] = col[z] . dY[z]^T (z = batch item), rows = the conv's K taps (cin*kh*kw), the pixel
// reduction read as vec4 along col's rows, output channels across the invocations of a row of the grid. That is
// the layout lavapipe runs fastest (the roofline probe's: A row-major as vec4 along the reduction, B as vec4
// along a short N that neighbouring invocations share), faster than gemm_nt, whose invocations each stream 16
// rows, where there are 64+ channels: measured 14.0 -> 18.4 GFLOP/s for 32->64 k3 at 40x40 output, 15.7 ->
// 19.1 for 64->64 k3 at 20x20, 13.7 -> 16.3 for 128->256 k3 at 10x10 (CPU time, batch 8). With 16 or 32 channels
// a grid row holds only 2-4 invocations and gemm_nt(_lanes) stays faster (16.5 vs 11.4 for 16->32 k3 at 80x80).
// The two passes around that GEMM:
//   transpose_dy: DyT[n][p][c] = dY[n][c][p], zero for pixels p >= P and channels c >= cout (rows of ppad pixels
//                 and cpad channels, multiples of 4), stored as Elem (f16 with amp, like the padded dy copy).
//   reduce_t:     dW[co][k] += sum over z of Part[z][k][co] (Part rows of cpad channels).
// Invocations per workgroup, along channels: a power of two sized to cpad / 4 (transpose_dy) or cout (reduce_t).
override WG: u32 = 64u;

struct Params {
  P: u32, ppad: u32, cout: u32, cpad: u32, // pixels per map (and padded), output channels (and padded)
  srcOff: u32, srcBS: u32, K: u32, _pad: u32, // dY's view; taps per output channel
  dstOff: u32, nsplit: u32, _p0: u32, _p1: u32, // where dW[0] is; partial sums
}

@group(0) @binding(0) var<storage, read> Src: array<f32>;
@group(0) @binding(1) var<storage, read_write> DyT4: array<vec4<Elem>>;
@group(0) @binding(2) var<storage, read_write> Dst: array<f32>;
@group(0) @binding(3) var<uniform> u: Params;
// Src as vec4 (transpose_dy4).
@group(0) @binding(4) var<storage, read> Src4: array<vec4f>;

// One invocation per 4x4 block (4 channels, 4 pixels) of one image, the channel groups of 4 pixels across a
// workgroup: its writes fill 4 of DyT's rows in order, and the 4 pixels it reads per channel are neighbours. A
// quarter of the workgroups of one pixel per invocation, which lavapipe runs markedly faster here.
@compute @workgroup_size(WG)
fn transpose_dy(@builtin(global_invocation_id) gi: vec3u) {
  let c4 = gi.x;
  let p0 = gi.y * 4u;
  if (c4 >= u.cpad / 4u) {
    return;
  }
  // Channels past cout and pixels past P stay zero; their loads are clamped to channel 0 and pixel P - 1.
  let c = vec4u(c4 * 4u) + vec4u(0u, 1u, 2u, 3u);
  let inC = c < vec4u(u.cout);
  let rows = vec4u(u.srcOff + gi.z * u.srcBS) + select(vec4u(0u), c, inC) * u.P;
  let out = (gi.z * u.ppad + p0) * (u.cpad / 4u) + c4;
  for (var i = 0u; i < 4u; i++) {
    let p = p0 + i;
    let at = rows + min(p, u.P - 1u);
    let v = vec4f(Src[at.x], Src[at.y], Src[at.z], Src[at.w]);
    DyT4[out + i * (u.cpad / 4u)] = toElem4(select(vec4f(), v, inC & vec4<bool>(p < u.P)));
  }
}

// transpose_dy for a dY whose offset, batch stride and P are multiples of 4: the 4x4 block read as one vec4
// per channel and transposed in registers, 4 loads instead of 16 (lavapipe pays per load, not per byte).
@compute @workgroup_size(WG)
fn transpose_dy4(@builtin(global_invocation_id) gi: vec3u) {
  let c4 = gi.x;
  let p0 = gi.y * 4u;
  if (c4 >= u.cpad / 4u) {
    return;
  }
  // Channels past cout stay zero; their loads are clamped to channel 0.
  let c = vec4u(c4 * 4u) + vec4u(0u, 1u, 2u, 3u);
  let inC = c < vec4u(u.cout);
  let at = (vec4u(u.srcOff + gi.z * u.srcBS + p0) + select(vec4u(0u), c, inC) * u.P) / 4u;
  let m = transpose(mat4x4f(Src4[at.x], Src4[at.y], Src4[at.z], Src4[at.w]));
  let out = (gi.z * u.ppad + p0) * (u.cpad / 4u) + c4;
  for (var i = 0u; i < 4u; i++) {
    DyT4[out + i * (u.cpad / 4u)] = toElem4(select(vec4f(), m[i], inC));
  }
}

// Dst[dstOff + co * K + k] += sum over z of Src[(z * K + k) * cpad + co]: the partial sums, transposed back.
// One invocation per (co, k), output channels across a workgroup: the partial sums are read along their rows.
@compute @workgroup_size(WG)
fn reduce_t(@builtin(global_invocation_id) gi: vec3u) {
  let co = gi.x;
  let k = gi.y;
  if (co >= u.cout) {
    return;
  }
  var sum = 0.0;
  for (var z = 0u; z < u.nsplit; z++) {
    sum += Src[(z * u.K + k) * u.cpad + co];
  }
  Dst[u.dstOff + co * u.K + k] += sum;
}
