// SiLU, the Sigmoid+Mul pair of every YOLOv5 Conv block fused: y = x * sigmoid(x);
// backward dx (+)= dy * s * (1 + x * (1 - s)) with s = sigmoid(x) recomputed from the saved input.
// Tensors are views: element i of batch item n (invocation (i, n)) lives at off + n * batchStride + i.
override WG: u32 = 64u;

struct Params {
  count: u32, per: u32, _pad: u32, flags: u32, // flags: 2 = accumulate into dx
  xOff: u32, xBS: u32, yOff: u32, yBS: u32,
  dyOff: u32, dyBS: u32, dxOff: u32, dxBS: u32,
  alpha: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;
@group(0) @binding(4) var<uniform> u: Params;
@group(0) @binding(5) var<storage, read> X4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> Y4: array<vec4f>;
@group(0) @binding(7) var<storage, read> DY4: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> DX4: array<vec4f>;

fn at(off: u32, bs: u32, n: u32, i: u32) -> u32 {
  return off + n * bs + i;
}

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

fn sigmoid4(x: vec4f) -> vec4f {
  return 1.0 / (1.0 + exp(-x));
}

// Element i4 (in vec4s) of batch item n, for views whose offsets, batch strides and per-item size are multiples of
// 4: a quarter of the per-lane loads, which bound lavapipe.
fn at4(off: u32, bs: u32, n: u32, i4: u32) -> u32 {
  return off / 4u + n * (bs / 4u) + i4;
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let n = g.y;
  if (i >= u.per) {
    return;
  }
  let x = X[at(u.xOff, u.xBS, n, i)];
  Y[at(u.yOff, u.yBS, n, i)] = x * sigmoid(x);
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let n = g.y;
  if (i >= u.per) {
    return;
  }
  let x = X[at(u.xOff, u.xBS, n, i)];
  let s = sigmoid(x);
  let o = at(u.dxOff, u.dxBS, n, i);
  let grad = DY[at(u.dyOff, u.dyBS, n, i)] * s * (1.0 + x * (1.0 - s));
  DX[o] = grad + select(0.0, DX[o], (u.flags & 2u) != 0u);
}

@compute @workgroup_size(WG)
fn forward4(@builtin(global_invocation_id) g: vec3u) {
  let i4 = g.x;
  let n = g.y;
  if (i4 >= u.per / 4u) {
    return;
  }
  let x = X4[at4(u.xOff, u.xBS, n, i4)];
  Y4[at4(u.yOff, u.yBS, n, i4)] = x * sigmoid4(x);
}

@compute @workgroup_size(WG)
fn backward4(@builtin(global_invocation_id) g: vec3u) {
  let i4 = g.x;
  let n = g.y;
  if (i4 >= u.per / 4u) {
    return;
  }
  let x = X4[at4(u.xOff, u.xBS, n, i4)];
  let s = sigmoid4(x);
  let o = at4(u.dxOff, u.dxBS, n, i4);
  let grad = DY4[at4(u.dyOff, u.dyBS, n, i4)] * s * (1.0 + x * (1.0 - s));
  DX4[o] = grad + select(vec4f(), DX4[o], (u.flags & 2u) != 0u);
}
