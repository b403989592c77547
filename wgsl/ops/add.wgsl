// Elementwise C = A + B (YOLOv5's residual shortcuts), same shapes; backward DX (+)= DC, dispatched once per input
// that needs a gradient. Tensors are views: element e of batch item e / per lives at
// off + (e / per) * batchStride + e % per.
override WG: u32 = 64u;

struct Params {
  count: u32, per: u32, pitch: u32, flags: u32, // flags: 2 = accumulate into dx
  aOff: u32, aBS: u32, bOff: u32, bBS: u32,
  cOff: u32, cBS: u32, dcOff: u32, dcBS: u32,
  dxOff: u32, dxBS: u32, oOff: u32, oBS: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<storage, read> DC: array<f32>;
@group(0) @binding(4) var<storage, read_write> DX: array<f32>;
@group(0) @binding(5) var<uniform> u: Params;

fn at(off: u32, bs: u32, e: u32) -> u32 {
  return off + (e / u.per) * bs + e % u.per;
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  C[at(u.cOff, u.cBS, e)] = A[at(u.aOff, u.aBS, e)] + B[at(u.bOff, u.bBS, e)];
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let e = g.x + g.y * u.pitch;
  if (e >= u.count) {
    return;
  }
  let i = at(u.dxOff, u.dxBS, e);
  DX[i] = DC[at(u.dcOff, u.dcBS, e)] + select(0.0, DX[i], (u.flags & 2u) != 0u);
}
