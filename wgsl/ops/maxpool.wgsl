// 2-D max pooling (NCHW). Like PyTorch, the gradient goes to the FIRST maximum of each window in row-major
// order (strict >, NaN wins), with padding acting as -inf: SPPF's chained 5x5 pools build plateaus, so ties
// are common. forward writes y and, per output, the winning input pixel (Arg); backward gathers, for each
// input pixel, dy of the outputs whose window it won: no scatter, so no float atomics.
override WG: u32 = 64u;

struct Params {
  count: u32, pitch: u32, flags: u32, c: u32, // flags: 2 = accumulate into dx
  h: u32, w: u32, ho: u32, wo: u32,
  kh: u32, kw: u32, stride: u32, pad: u32,
  xOff: u32, xBS: u32, yOff: u32, yBS: u32,
  dyOff: u32, dyBS: u32, dxOff: u32, dxBS: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read_write> Arg: array<u32>;
@group(0) @binding(3) var<storage, read> DY: array<f32>;
@group(0) @binding(4) var<storage, read_write> DX: array<f32>;
@group(0) @binding(5) var<uniform> u: Params;
@group(0) @binding(6) var<storage, read> ArgIn: array<u32>;

// Start of channel plane `plane` (= n * c + channel) in a view with the given offset and batch stride.
fn planeBase(off: u32, bs: u32, plane: u32, size: u32) -> u32 {
  return off + (plane / u.c) * bs + (plane % u.c) * size;
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  let outPlane = u.ho * u.wo;
  let plane = e / outPlane;
  let oy = (e % outPlane) / u.wo;
  let ox = e % u.wo;
  let base = planeBase(u.xOff, u.xBS, plane, u.h * u.w);
  let y0 = i32(oy * u.stride) - i32(u.pad);
  let x0 = i32(ox * u.stride) - i32(u.pad);
  var best = -bitcast<f32>(0x7f800000u);
  var arg = u32(max(y0, 0)) * u.w + u32(max(x0, 0));
  for (var ky = 0u; ky < u.kh; ky++) {
    let iy = y0 + i32(ky);
    if (iy < 0 || iy >= i32(u.h)) {
      continue;
    }
    for (var kx = 0u; kx < u.kw; kx++) {
      let ix = x0 + i32(kx);
      if (ix < 0 || ix >= i32(u.w)) {
        continue;
      }
      let at = u32(iy) * u.w + u32(ix);
      let v = X[base + at];
      if (v > best || v != v) {
        best = v;
        arg = at;
      }
    }
  }
  Y[planeBase(u.yOff, u.yBS, plane, outPlane) + oy * u.wo + ox] = best;
  Arg[e] = arg;
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  let inPlane = u.h * u.w;
  let outPlane = u.ho * u.wo;
  let plane = e / inPlane;
  let me = e % inPlane;
  let iy = i32(me / u.w);
  let ix = i32(me % u.w);
  let s = i32(u.stride);
  // Outputs whose window covers (iy, ix): oy * s - pad <= iy <= oy * s - pad + kh - 1.
  let ty = iy + i32(u.pad) - i32(u.kh) + 1;
  let tx = ix + i32(u.pad) - i32(u.kw) + 1;
  let oy0 = select((ty + s - 1) / s, 0, ty <= 0);
  let ox0 = select((tx + s - 1) / s, 0, tx <= 0);
  let oy1 = min(i32(u.ho) - 1, (iy + i32(u.pad)) / s);
  let ox1 = min(i32(u.wo) - 1, (ix + i32(u.pad)) / s);
  let dyBase = planeBase(u.dyOff, u.dyBS, plane, outPlane);
  var sum = 0.0;
  for (var oy = oy0; oy <= oy1; oy++) {
    for (var ox = ox0; ox <= ox1; ox++) {
      let o = u32(oy) * u.wo + u32(ox);
      if (ArgIn[plane * outPlane + o] == me) {
        sum += DY[dyBase + o];
      }
    }
  }
  let i = planeBase(u.dxOff, u.dxBS, plane, inPlane) + me;
  // A branch, not select(): select() would read the destination even when overwriting it.
  if ((u.flags & 2u) != 0u) {
    DX[i] += sum;
  } else {
    DX[i] = sum;
  }
}
