// Elementwise activations y = f(x), chosen by ACT; backward dx (+)= dy * f'(x) with f' recomputed from the saved
// input. ACT 0: ReLU max(x, 0), no gradient at exactly 0 (PyTorch's threshold rule x > 0); 1: LeakyReLU with slope
// u.alpha below 0 (gradient alpha at 0); 2: Sigmoid 1 / (1 + exp(-x)) (the Detect head's, when a graph keeps it
// unfused from a Mul); 3: SiLU x * sigmoid(x), the Sigmoid+Mul pair of every YOLOv5 Conv block fused.
// Tensors are views: element i of batch item n (invocation (i, n)) lives at off + n * batchStride + i.
override WG: u32 = 64u;
override ACT: u32 = 0u;

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

// Element i4 (in vec4s) of batch item n, for views whose offsets, batch strides and per-item size are multiples of
// 4: a quarter of the per-lane loads, which bound lavapipe.
fn at4(off: u32, bs: u32, n: u32, i4: u32) -> u32 {
  return off / 4u + n * (bs / 4u) + i4;
}

fn sigmoid(x: vec4f) -> vec4f {
  return 1.0 / (1.0 + exp(-x));
}

// f and dy * f' are written once over vec4s (WGSL has no generics); the scalar kernels pass a splat and keep .x,
// every operation being per component.
fn act(x: vec4f) -> vec4f {
  switch ACT {
    case 1u: {
      return select(u.alpha * x, x, x >= vec4f());
    }
    case 2u: {
      return sigmoid(x);
    }
    case 3u: {
      return x * sigmoid(x);
    }
    default: {
      return max(x, vec4f());
    }
  }
}

fn grad(x: vec4f, dy: vec4f) -> vec4f {
  switch ACT {
    case 1u: {
      return dy * select(vec4f(u.alpha), vec4f(1.0), x > vec4f());
    }
    case 2u: {
      let s = sigmoid(x);
      return dy * (s * (1.0 - s));
    }
    case 3u: {
      let s = sigmoid(x);
      return dy * s * (1.0 + x * (1.0 - s));
    }
    default: {
      return dy * select(vec4f(), vec4f(1.0), x > vec4f());
    }
  }
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let n = g.y;
  if (i >= u.per) {
    return;
  }
  Y[at(u.yOff, u.yBS, n, i)] = act(vec4f(X[at(u.xOff, u.xBS, n, i)])).x;
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let n = g.y;
  if (i >= u.per) {
    return;
  }
  let d = grad(vec4f(X[at(u.xOff, u.xBS, n, i)]), vec4f(DY[at(u.dyOff, u.dyBS, n, i)])).x;
  let o = at(u.dxOff, u.dxBS, n, i);
  // A branch, not select(): select() would read the destination even when overwriting it.
  if ((u.flags & 2u) != 0u) {
    DX[o] += d;
  } else {
    DX[o] = d;
  }
}

@compute @workgroup_size(WG)
fn forward4(@builtin(global_invocation_id) g: vec3u) {
  let i4 = g.x;
  let n = g.y;
  if (i4 >= u.per / 4u) {
    return;
  }
  Y4[at4(u.yOff, u.yBS, n, i4)] = act(X4[at4(u.xOff, u.xBS, n, i4)]);
}

@compute @workgroup_size(WG)
fn backward4(@builtin(global_invocation_id) g: vec3u) {
  let i4 = g.x;
  let n = g.y;
  if (i4 >= u.per / 4u) {
    return;
  }
  let d = grad(X4[at4(u.xOff, u.xBS, n, i4)], DY4[at4(u.dyOff, u.dyBS, n, i4)]);
  let o = at4(u.dxOff, u.dxBS, n, i4);
  // A branch, not select(): select() would read the destination even when overwriting it.
  if ((u.flags & 2u) != 0u) {
    DX4[o] += d;
  } else {
    DX4[o] = d;
  }
}
