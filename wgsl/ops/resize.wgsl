// Nearest-neighbour upsampling by integer factors (ONNX Resize, mode nearest, asymmetric coordinates, floor:
// the exact integer case of YOLOv5's x2 Upsample): y[oy][ox] = x[oy / sy][ox / sx]; backward dx (+)= the sum
// of dy over each sy x sx block.
override WG: u32 = 64u;

struct Params {
  count: u32, pitch: u32, flags: u32, c: u32, // flags: 2 = accumulate into dx
  h: u32, w: u32, sy: u32, sx: u32,
  xOff: u32, xBS: u32, yOff: u32, yBS: u32,
  dyOff: u32, dyBS: u32, dxOff: u32, dxBS: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;
@group(0) @binding(4) var<uniform> u: Params;

fn planeBase(off: u32, bs: u32, plane: u32, size: u32) -> u32 {
  return off + (plane / u.c) * bs + (plane % u.c) * size;
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  let wo = u.w * u.sx;
  let outPlane = u.h * u.sy * wo;
  let plane = e / outPlane;
  let oy = (e % outPlane) / wo;
  let ox = e % wo;
  let x = X[planeBase(u.xOff, u.xBS, plane, u.h * u.w) + (oy / u.sy) * u.w + ox / u.sx];
  Y[planeBase(u.yOff, u.yBS, plane, outPlane) + oy * wo + ox] = x;
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  let inPlane = u.h * u.w;
  let wo = u.w * u.sx;
  let plane = e / inPlane;
  let iy = (e % inPlane) / u.w;
  let ix = e % u.w;
  let base = planeBase(u.dyOff, u.dyBS, plane, inPlane * u.sy * u.sx) + iy * u.sy * wo + ix * u.sx;
  var sum = 0.0;
  for (var dy = 0u; dy < u.sy; dy++) {
    for (var dx = 0u; dx < u.sx; dx++) {
      sum += DY[base + dy * wo + dx];
    }
  }
  let i = planeBase(u.dxOff, u.dxBS, plane, inPlane) + iy * u.w + ix;
  // A branch, not select(): select() would read the destination even when overwriting it.
  if ((u.flags & 2u) != 0u) {
    DX[i] += sum;
  } else {
    DX[i] = sum;
  }
}
