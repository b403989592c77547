// The column transforms of a conv's GEMMs (wgsl/ops/conv.wgsl, wgsl/ops/gemm_tiled.wgsl): im2col copies input
// taps into the column matrix (and pads dy's rows to a multiple of 4), col2im adds the backward-data GEMM's
// column gradients back onto the input pixels. Matrices with a pixel axis are padded to ppad (a multiple of 4)
// columns so the GEMMs read them as vec4.
// Every divisor is a pipeline constant (ROWS, KH, KW, WO, CIN, STRIDE): lavapipe turns a division by a constant
// into a multiply and shift, while one by a uniform value runs as a scalar division per lane (yolov5n 320 batch
// 8: im2col 241 -> 202, col2im 155 -> 133 CPU-ms per step).
override WG_X: u32 = 64u;
override WG_Y: u32 = 1u;
// Column rows per image (Cin*KH*KW, or dy's channels where im2col pads dy), kernel size, output width, input
// channels (col2im) and stride (col2im and im2col_rows; im2col reads it from the uniform, as a multiplier).
override ROWS: u32 = 1u;
override KH: u32 = 3u;
override KW: u32 = 3u;
override WO: u32 = 1u;
override CIN: u32 = 1u;
override STRIDE: u32 = 1u;
// vec4s of columns each im2col invocation writes, and rows each im2col workgroup fills.
override IM2COL_V: u32 = 4u;
override IM2COL_ROWS: u32 = 1u;
// im2col_panels: vec4 columns per panel of its output (wgsl/ops/conv_panels.wgsl).
override PANEL: u32 = 16u;
// im2col_rows: padding, vec4s of input each pixel quad reads (WINDOW_V), and where tap kx = 0 of the quad's
// first pixel lies in them (WINDOW_OFF).
override PAD: u32 = 0u;
override WINDOW_V: u32 = 1u;
override WINDOW_OFF: u32 = 0u;

// #include ops/conv_panels.wgsl

struct Params {
  h: u32, w: u32, ho: u32, stride: u32, // input map, output rows, stride
  pad: u32, ppad: u32, count: u32, flags: u32, // padding; padded pixels per map; im2col rows in all; 2 = col2im adds
  srcOff: u32, srcBS: u32, dstOff: u32, dstBS: u32, // Src's and Dst's views (offset, batch stride)
}

@group(0) @binding(0) var<storage, read> Src: array<f32>;
@group(0) @binding(1) var<storage, read_write> Dst: array<f32>;
@group(0) @binding(2) var<uniform> u: Params;
@group(0) @binding(3) var<storage, read_write> Col4: array<vec4<Elem>>;
// Src and Dst as vec4 (im2col_rows, col2im_k3s2).
@group(0) @binding(4) var<storage, read> Src4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> Dst4: array<vec4f>;

// Input pixel tap (ky, kx) of output pixel p = (oy, ox) from plane `src`; zero in padding, for p >= Ho*Wo.
fn tap(src: u32, ky: u32, kx: u32, oy: u32, ox: u32, p: u32) -> f32 {
  let iy = i32(oy * u.stride + ky) - i32(u.pad);
  let ix = i32(ox * u.stride + kx) - i32(u.pad);
  let inside = p < u.ho * WO && u32(iy) < u.h && u32(ix) < u.w;
  return select(0.0, Src[min(src + u32(iy) * u.w + u32(ix), arrayLength(&Src) - 1u)], inside);
}

// Moves (oy, ox) to the next output pixel in row-major order, without a division.
fn advance(oy: ptr<function, u32>, ox: ptr<function, u32>) {
  let wrap = *ox + 1u == WO;
  *ox = select(*ox + 1u, 0u, wrap);
  *oy = select(*oy, *oy + 1u, wrap);
}

// Col4 row r = n * ROWS + k, vec4 columns from p4: the input pixel tap k of output pixels 4*p4 onwards (plain
// rows of ppad pixels). With a 1x1 kernel this is a copy into rows padded to ppad. A workgroup
// fills IM2COL_ROWS consecutive rows, one after the other, so the row and its tap (ci, ky, kx) stay uniform
// across the workgroup. The workgroup's width (WG_X lanes of IM2COL_V vec4s) is sized to the row: small maps
// (10x10 = 25 vec4s) would otherwise leave most lanes rewriting clamped duplicates, and lanes, not workgroups,
// are what lavapipe pays for.
@compute @workgroup_size(WG_X)
fn im2col(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = (wg.x * WG_X + l.x) * IM2COL_V;
  // Rows of big maps skip the loop: even with one trip it ran their im2col markedly slower on lavapipe.
  if (IM2COL_ROWS == 1u) {
    im2colRow(wg.z, first);
    return;
  }
  for (var i = 0u; i < IM2COL_ROWS; i++) {
    let r = wg.z * IM2COL_ROWS + i;
    if (r >= u.count) {
      break;
    }
    im2colRow(r, first);
  }
}

// Fills IM2COL_V vec4s of Col4 row r from vec4 column `first` on.
fn im2colRow(r: u32, first: u32) {
  let ppad4 = u.ppad >> 2u;
  let k = r % ROWS;
  let src = u.srcOff + (r / ROWS) * u.srcBS + (k / (KH * KW)) * u.h * u.w;
  let ky = (k % (KH * KW)) / KW;
  let kx = k % KW;
  var p = min(first, ppad4 - 1u) * 4u;
  var oy = p / WO;
  var ox = p % WO;
  for (var j = 0u; j < IM2COL_V; j++) {
    // Clamped rather than returned early: a duplicate lane rewrites the same value, and lavapipe runs loads
    // without an execution mask faster.
    let p4 = min(first + j, ppad4 - 1u);
    var ty = oy;
    var tx = ox;
    let v0 = tap(src, ky, kx, ty, tx, p);
    advance(&ty, &tx);
    let v1 = tap(src, ky, kx, ty, tx, p + 1u);
    advance(&ty, &tx);
    let v2 = tap(src, ky, kx, ty, tx, p + 2u);
    advance(&ty, &tx);
    Col4[r * ppad4 + p4] = toElem4(vec4f(v0, v1, v2, tap(src, ky, kx, ty, tx, p + 3u)));
    if (first + j + 1u < ppad4) {
      advance(&ty, &tx);
      oy = ty;
      ox = tx;
      p += 4u;
    }
  }
}

// im2col into panels of PANEL vec4 columns: invocation (row k, panel wg.y, image wg.z) fills its row of the
// panel, lanes along rows, so the lanes of a SIMD group store into neighbouring 256-byte panel rows (filling
// whole panels in order) rather than into as many panels as a plain row has (measured: the stem's im2col into
// panels took 52 -> 75 CPU-ms per step with im2col's row-wise lanes). Rows past ROWS are clamped: a duplicate
// lane rewrites the same values.
@compute @workgroup_size(WG_X)
fn im2col_panels(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let ppad4 = u.ppad >> 2u;
  let k = min(wg.x * WG_X + l.x, ROWS - 1u);
  let first = wg.y * PANEL;
  let src = u.srcOff + wg.z * u.srcBS + (k / (KH * KW)) * u.h * u.w;
  let ky = (k % (KH * KW)) / KW;
  let kx = k % KW;
  let at = panelOf(PANEL, first, ROWS, ppad4);
  let out = wg.z * ROWS * ppad4 + at.base + k * at.width;
  var p = first * 4u;
  var oy = p / WO;
  var ox = p % WO;
  for (var c = first; c < first + at.width; c++) {
    let v0 = tap(src, ky, kx, oy, ox, p);
    advance(&oy, &ox);
    let v1 = tap(src, ky, kx, oy, ox, p + 1u);
    advance(&oy, &ox);
    let v2 = tap(src, ky, kx, oy, ox, p + 2u);
    advance(&oy, &ox);
    let v3 = tap(src, ky, kx, oy, ox, p + 3u);
    advance(&oy, &ox);
    Col4[out + c] = toElem4(vec4f(v0, v1, v2, v3));
    p += 4u;
  }
}

// im2col_panels for maps whose rows hold whole pixel quads (W and WO multiples of 4, Src's planes 4-aligned):
// invocation (input channel and ky pair, panel, image) fills that pair's KW rows of the panel, reading each
// quad's input span as WINDOW_V aligned vec4s once instead of 4 * KW scalar taps that lavapipe gathers lane by
// lane. Lanes run along the pairs of one panel, so neighbouring lanes store neighbouring panel rows; lanes past
// the last pair are clamped (a duplicate lane rewrites the same values).
@compute @workgroup_size(WG_X)
fn im2col_rows(@builtin(global_invocation_id) gi: vec3u) {
  let ppad4 = u.ppad >> 2u;
  let pairs = ROWS / KW;
  let g = min(gi.x, ((ppad4 + PANEL - 1u) / PANEL) * pairs - 1u);
  let ck = g % pairs;
  let ky = ck % KH;
  let first = (g / pairs) * PANEL;
  let at = panelOf(PANEL, first, ROWS, ppad4);
  let out = gi.z * ROWS * ppad4 + at.base + ck * KW * at.width;
  let w4 = u.w >> 2u;
  let plane4 = (u.srcOff + gi.z * u.srcBS + (ck / KH) * u.h * u.w) >> 2u;
  let last = arrayLength(&Src4) - 1u;
  // The window starts at the quad's first tap column less WINDOW_OFF, rounded down to a vec4: PAD + WINDOW_OFF
  // (a multiple of 4) columns left of the quad's stride * ox (one too, as ox is).
  let left4 = (PAD + WINDOW_OFF) / 4u;
  var oy = (first * 4u) / WO;
  var ox = (first * 4u) % WO;
  for (var c = first; c < first + at.width; c++) {
    // Unsigned wrap-around sends rows and columns before the map's start past its end: one bound check each.
    let iy = oy * STRIDE + ky - PAD;
    let row = plane4 + iy * w4;
    var window: array<f32, 16>;
    for (var j = 0u; j < WINDOW_V; j++) {
      let x4 = ((ox * STRIDE) >> 2u) + j - left4;
      let v = select(vec4f(), Src4[min(row + x4, last)], iy < u.h && x4 < w4);
      window[4u * j] = v.x;
      window[4u * j + 1u] = v.y;
      window[4u * j + 2u] = v.z;
      window[4u * j + 3u] = v.w;
    }
    for (var kx = 0u; kx < KW; kx++) {
      let e = WINDOW_OFF + kx;
      let quad = vec4f(window[e], window[e + STRIDE], window[e + 2u * STRIDE], window[e + 3u * STRIDE]);
      Col4[out + kx * at.width + c] = toElem4(quad);
    }
    ox += 4u;
    let wrap = ox == WO;
    ox = select(ox, 0u, wrap);
    oy = select(oy, oy + 1u, wrap);
  }
}

// Dst[n][ci][iy][ix] (+)= sum of Src = dcol[n][(ci, ky, kx)][(oy, ox)] over the taps that read this input pixel.
// The grid is (ix, iy, plane n * CIN + ci), so no per-pixel division. Each pixel visits ceil(KH/STRIDE) x
// ceil(KW/STRIDE) candidate taps (ky = (iy + pad) mod stride + multiples of stride) in an unrolled loop, masked
// where a tap falls past the kernel or the output map, rather than a loop with per-lane bounds, which lavapipe
// runs under an execution mask (30% slower, measured).
@compute @workgroup_size(WG_X, WG_Y)
fn col2im(@builtin(global_invocation_id) gi: vec3u) {
  let ix = gi.x;
  let iy = gi.y;
  if (ix >= u.w || iy >= u.h) {
    return;
  }
  let r = gi.z;
  let ci = r % CIN;
  let ky0 = (iy + u.pad) % STRIDE;
  let kx0 = (ix + u.pad) % STRIDE;
  let oy0 = (iy + u.pad) / STRIDE;
  let ox0 = (ix + u.pad) / STRIDE;
  let rowBase = (r / CIN) * ROWS + ci * KH * KW;
  let last = arrayLength(&Src) - 1u;
  var sum = 0.0;
  for (var ty = 0u; ty < (KH + STRIDE - 1u) / STRIDE; ty++) {
    let ky = ky0 + ty * STRIDE;
    let oy = oy0 - ty;
    for (var tx = 0u; tx < (KW + STRIDE - 1u) / STRIDE; tx++) {
      let kx = kx0 + tx * STRIDE;
      let ox = ox0 - tx;
      let hit = ky < KH && kx < KW && oy < u.ho && ox < WO;
      let at = min((rowBase + ky * KW + kx) * u.ppad + oy * WO + ox, last);
      sum += select(0.0, Src[at], hit);
    }
  }
  storeDst(u.dstOff + (r / CIN) * u.dstBS + ci * u.h * u.w + iy * u.w + ix, sum);
}

// Dst[at] = v, or += v where the uniform's flags say to accumulate. A branch, not select(): select() would read
// the destination even when overwriting it.
fn storeDst(at: u32, v: f32) {
  if ((u.flags & 2u) != 0u) {
    Dst[at] += v;
  } else {
    Dst[at] = v;
  }
}

// storeDst of a vec4 at Dst4[at].
fn storeDst4(at: u32, v: vec4f) {
  if ((u.flags & 2u) != 0u) {
    Dst4[at] += v;
  } else {
    Dst4[at] = v;
  }
}

// col2im of a k3 s2 p1 conv on maps of even height and of width 2 * WO, WO a multiple of 4 (dx 4-aligned): an
// invocation sums the taps of an 8-pixel run of a pair of dx rows 2a, 2a + 1. Each pixel's taps follow from its
// parity alone (an even row or column takes the kernel's middle tap, an odd one its outer two), so they are
// read as three vec4s and a scalar per dcol row (taps kx = 0, 1, 2 of output pixels 4j.. 4j + 4 of row oy)
// instead of four masked scalar candidates per pixel: every dcol value is read once.
@compute @workgroup_size(WG_X)
fn col2im_k3s2(@builtin(global_invocation_id) gi: vec3u) {
  let runs = WO / 4u;
  if (gi.x >= u.ho * runs) {
    return;
  }
  let a = gi.x / runs;
  let j = gi.x % runs;
  let r = gi.z;
  let ci = r % CIN;
  let ppad4 = u.ppad >> 2u;
  // dcol row (ci, ky = 0, kx = 0) of this image, at output pixel (a, 4j), in vec4s
  let taps = ((r / CIN) * ROWS + ci * 9u) * ppad4 + a * runs + j;
  let middle = runTaps(taps + 3u * ppad4, ppad4, j + 1u < runs);
  let lower = runTaps(taps + 6u * ppad4, ppad4, j + 1u < runs);
  // Row 2a + 1's tap ky = 0 reads output row a + 1: for the last pair, past the map (the next dcol row's start,
  // dropped).
  let upper = runTaps(taps + runs, ppad4, j + 1u < runs);
  let inside = a + 1u < u.ho;
  let at = (u.dstOff + (r / CIN) * u.dstBS + ci * u.h * u.w + 2u * a * u.w) / 4u + 2u * j;
  storeDst4(at, middle[0]);
  storeDst4(at + 1u, middle[1]);
  let below = at + u.w / 4u;
  storeDst4(below, lower[0] + select(vec4f(), upper[0], inside));
  storeDst4(below + 1u, lower[1] + select(vec4f(), upper[1], inside));
}

// The 8 dx pixels 8j.. 8j + 7 of one tap row ky from its dcol rows kx = 0, 1, 2 (ppad4 apart, from vec4 `at` =
// output pixel 4j): an even pixel 2m takes kx = 1 at m, an odd one 2m + 1 kx = 0 at m + 1 (the scalar past the
// vec4, zero at the row's end: `more` false) and kx = 2 at m.
fn runTaps(at: u32, ppad4: u32, more: bool) -> array<vec4f, 2> {
  let v0 = Src4[at];
  let v1 = Src4[at + ppad4];
  let v2 = Src4[at + 2u * ppad4];
  // The scalar past the vec4 is the next dcol row's first value where the row ends: in the buffer, dropped.
  let s0 = select(0.0, Src[4u * (at + 1u)], more);
  return array<vec4f, 2>(
    vec4f(v1.x, v0.y + v2.x, v1.y, v0.z + v2.y),
    vec4f(v1.z, v0.w + v2.z, v1.w, s0 + v2.w),
  );
}

// col2im of a k3 s1 p1 conv on maps whose rows are whole vec4s (W = WO a multiple of 4, dx 4-aligned): an
// invocation sums the 9 taps of a 4-pixel run of one dx row, per tap row ky three vec4s (kx = 0, 1, 2 of
// output pixels 4j.. 4j + 3) and the two scalars the shifted taps reach past them, instead of 9 masked scalar
// candidates per pixel.
@compute @workgroup_size(WG_X)
fn col2im_k3s1(@builtin(global_invocation_id) gi: vec3u) {
  let runs = WO / 4u;
  if (gi.x >= u.ho * runs) {
    return;
  }
  let iy = gi.x / runs;
  let j = gi.x % runs;
  let r = gi.z;
  let ci = r % CIN;
  let ppad4 = u.ppad >> 2u;
  let last4 = arrayLength(&Src4) - 1u;
  let last = arrayLength(&Src) - 1u;
  // dcol row (ci, ky = 0, kx = 0) of this image, at output pixel (0, 4j), in vec4s
  let taps = ((r / CIN) * ROWS + ci * 9u) * ppad4 + j;
  var sum = vec4f();
  for (var ky = 0u; ky < 3u; ky++) {
    // Output row iy + 1 - ky: unsigned wrap-around sends the row before the map past its end.
    let oy = iy + 1u - ky;
    let at = taps + 3u * ky * ppad4 + oy * runs;
    let v0 = Src4[min(at, last4)];
    let v1 = Src4[min(at + ppad4, last4)];
    let v2 = Src4[min(at + 2u * ppad4, last4)];
    // kx = 0 reaches output pixel 4j + 4 (the next run's first), kx = 2 pixel 4j - 1 (the previous run's last).
    let after = select(0.0, Src[min(4u * at + 4u, last)], j + 1u < runs);
    let before = select(0.0, Src[min(4u * (at + 2u * ppad4) - 1u, last)], j > 0u);
    let row = v1 + vec4f(v0.yzw, after) + vec4f(before, v2.xyz);
    sum += select(vec4f(), row, oy < u.ho);
  }
  storeDst4((u.dstOff + (r / CIN) * u.dstBS + ci * u.h * u.w + iy * u.w) / 4u + j, sum);
}
