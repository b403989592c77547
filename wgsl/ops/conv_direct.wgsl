// The register family's direct (implicit-GEMM) convolutions: a stride-1 conv's backward-data as the conv of dY
// with the transposed, rotated kernel, without dcol or col2im (src/ops/conv_kernels.ts directBackwardData).
// Kernel size, as constants where a loop over taps must unroll.
override KH: u32 = 3u;
override KW: u32 = 3u;

// #include ops/conv_common.wgsl

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

// Stores an invocation's tile of C as vec4 rows (C's offset, batch stride and row length (ldc) are multiples of
// 4); the tile's second vec4 of each row only when `second`.
fn storeTile4(t: Tile, gi: vec3u, second: bool) {
  let n4 = gi.x * 2u;
  let m0 = gi.y * 8u;
  if (n4 >= u.N4) {
    return;
  }
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

// conv_direct for an output whose offset, batch stride and row length (ldc) are multiples of 4: vec4 stores.
@compute @workgroup_size(WG_X, WG_Y)
fn conv_direct_vec4(@builtin(global_invocation_id) gi: vec3u) {
  storeTile4(directTile(gi), gi, gi.x * 2u + 1u < u.N4);
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
  // Its maps' rows hold whole 8-pixel tiles: every tile stores both vec4s (a constant, so no test per row).
  storeTile4(directRowsTile(gi), gi, true);
}
