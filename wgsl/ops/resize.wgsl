// Nearest-neighbour upsampling by integer factors (ONNX Resize, mode nearest, asymmetric coordinates, floor:
// the exact integer case of YOLOv5's x2 Upsample): y[oy][ox] = x[oy / sy][ox / sx]; backward dx (+)= the sum
// of dy over each sy x sx block.
// The shape is pipeline constants: lavapipe runs a division by a uniform value as a scalar division per lane, by
// a constant as a multiply and shift, and the index arithmetic below divides several times per element.
override WG: u32 = 64u;
override C: u32 = 1u; // channels, input height and width, scale factors
override H: u32 = 1u;
override W: u32 = 1u;
override SY: u32 = 2u;
override SX: u32 = 2u;

struct Params {
  count: u32, pitch: u32, flags: u32, _pad: u32, // flags: 2 = accumulate into dx
  xOff: u32, xBS: u32, yOff: u32, yBS: u32,
  dyOff: u32, dyBS: u32, dxOff: u32, dxBS: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;
@group(0) @binding(4) var<uniform> u: Params;

fn planeBase(off: u32, bs: u32, plane: u32, size: u32) -> u32 {
  return off + (plane / C) * bs + (plane % C) * size;
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  let wo = W * SX;
  let outPlane = H * SY * wo;
  let plane = e / outPlane;
  let oy = (e % outPlane) / wo;
  let ox = e % wo;
  let x = X[planeBase(u.xOff, u.xBS, plane, H * W) + (oy / SY) * W + ox / SX];
  Y[planeBase(u.yOff, u.yBS, plane, outPlane) + oy * wo + ox] = x;
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  let inPlane = H * W;
  let wo = W * SX;
  let plane = e / inPlane;
  let iy = (e % inPlane) / W;
  let ix = e % W;
  let base = planeBase(u.dyOff, u.dyBS, plane, inPlane * SY * SX) + iy * SY * wo + ix * SX;
  var sum = 0.0;
  for (var dy = 0u; dy < SY; dy++) {
    for (var dx = 0u; dx < SX; dx++) {
      sum += DY[base + dy * wo + dx];
    }
  }
  let i = planeBase(u.dxOff, u.dxBS, plane, inPlane) + iy * W + ix;
  // A branch, not select(): select() would read the destination even when overwriting it.
  if ((u.flags & 2u) != 0u) {
    DX[i] += sum;
  } else {
    DX[i] = sum;
  }
}
