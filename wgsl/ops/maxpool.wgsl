// 2-D max pooling (NCHW). Like PyTorch, the gradient goes to the FIRST maximum of each window in row-major
// order (strict >, NaN wins), with padding acting as -inf: SPPF's chained 5x5 pools build plateaus, so ties
// are common. forward writes y and, per output, the winning input pixel (Arg); backward gathers, for each
// input pixel, dy of the outputs whose window it won: no scatter, so no float atomics.
// The shape is pipeline constants: lavapipe runs a division by a uniform value as a scalar division per lane, by
// a constant as a multiply and shift, and the index arithmetic below divides several times per element; the
// window loops get constant bounds.
override WG: u32 = 64u;
override C: u32 = 1u; // channels, input and output maps, kernel, stride, padding
override H: u32 = 1u;
override W: u32 = 1u;
override HO: u32 = 1u;
override WO: u32 = 1u;
override KH: u32 = 1u;
override KW: u32 = 1u;
override STRIDE: u32 = 1u;
override PAD: u32 = 0u;

struct Params {
  count: u32, pitch: u32, flags: u32, _pad: u32, // flags: 2 = accumulate into dx
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
  return off + (plane / C) * bs + (plane % C) * size;
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  let outPlane = HO * WO;
  let plane = e / outPlane;
  let oy = (e % outPlane) / WO;
  let ox = e % WO;
  let base = planeBase(u.xOff, u.xBS, plane, H * W);
  let y0 = i32(oy * STRIDE) - i32(PAD);
  let x0 = i32(ox * STRIDE) - i32(PAD);
  var best = -bitcast<f32>(0x7f800000u);
  var arg = u32(max(y0, 0)) * W + u32(max(x0, 0));
  for (var ky = 0u; ky < KH; ky++) {
    let iy = y0 + i32(ky);
    if (iy < 0 || iy >= i32(H)) {
      continue;
    }
    for (var kx = 0u; kx < KW; kx++) {
      let ix = x0 + i32(kx);
      if (ix < 0 || ix >= i32(W)) {
        continue;
      }
      let at = u32(iy) * W + u32(ix);
      let v = X[base + at];
      if (v > best || v != v) {
        best = v;
        arg = at;
      }
    }
  }
  Y[planeBase(u.yOff, u.yBS, plane, outPlane) + oy * WO + ox] = best;
  Arg[e] = arg;
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  let inPlane = H * W;
  let outPlane = HO * WO;
  let plane = e / inPlane;
  let me = e % inPlane;
  let iy = i32(me / W);
  let ix = i32(me % W);
  let s = i32(STRIDE);
  // Outputs whose window covers (iy, ix): oy * s - pad <= iy <= oy * s - pad + kh - 1.
  let ty = iy + i32(PAD) - i32(KH) + 1;
  let tx = ix + i32(PAD) - i32(KW) + 1;
  let oy0 = select((ty + s - 1) / s, 0, ty <= 0);
  let ox0 = select((tx + s - 1) / s, 0, tx <= 0);
  let oy1 = min(i32(HO) - 1, (iy + i32(PAD)) / s);
  let ox1 = min(i32(WO) - 1, (ix + i32(PAD)) / s);
  let dyBase = planeBase(u.dyOff, u.dyBS, plane, outPlane);
  var sum = 0.0;
  // ceil(KH / STRIDE) x ceil(KW / STRIDE) candidates in the same order, masked past (oy1, ox1): a loop with constant
  // bounds, where per-lane bounds ran under an execution mask on lavapipe.
  for (var ty = 0; ty < i32((KH + STRIDE - 1u) / STRIDE); ty++) {
    let oy = oy0 + ty;
    for (var tx = 0; tx < i32((KW + STRIDE - 1u) / STRIDE); tx++) {
      let ox = ox0 + tx;
      let o = u32(min(oy, oy1)) * WO + u32(min(ox, ox1));
      let won = oy <= oy1 && ox <= ox1 && ArgIn[plane * outPlane + o] == me;
      sum += select(0.0, DY[dyBase + o], won);
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
