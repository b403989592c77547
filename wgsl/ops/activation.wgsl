// Elementwise activations y = f(x), chosen by ACT; backward dx (+)= dy * f'(x) with f' recomputed from the saved
// input. ACT 0: ReLU max(x, 0), no gradient at exactly 0 (PyTorch's threshold rule x > 0); 1: LeakyReLU with slope
// u.alpha below 0 (gradient alpha at 0); 2: Sigmoid 1 / (1 + exp(-x)) (the Detect head's, when a graph keeps it
// unfused from a Mul); 3: SiLU x * sigmoid(x), the Sigmoid+Mul pair of every YOLOv5 Conv block fused.
// Tensors are views: element i of batch item n lives at off + n * batchStride + i. Compiled once per Lane type
// (src/gpu/wgsl.ts lanePrelude): invocation (i, n) handles lane i of batch item n, one f32, or a vec4f where
// every view it touches is 4-aligned (offsets, batch strides and per-item element counts multiples of 4).
override WG: u32 = 64u;
override ACT: u32 = 0u;

struct Params {
  count: u32, per: u32, _pad: u32, flags: u32, // flags: 2 = accumulate into dx
  xOff: u32, xBS: u32, yOff: u32, yBS: u32,
  dyOff: u32, dyBS: u32, dxOff: u32, dxBS: u32,
  alpha: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> X: array<Lane>;
@group(0) @binding(1) var<storage, read_write> Y: array<Lane>;
@group(0) @binding(2) var<storage, read> DY: array<Lane>;
@group(0) @binding(3) var<storage, read_write> DX: array<Lane>;
@group(0) @binding(4) var<uniform> u: Params;

// Index of lane i of batch item n (off and bs in floats, multiples of LANE_WIDTH).
fn at(off: u32, bs: u32, n: u32, i: u32) -> u32 {
  return (off + n * bs) / LANE_WIDTH + i;
}

fn sigmoid(x: Lane) -> Lane {
  return 1.0 / (1.0 + exp(-x));
}

// f and dy * f', every operation per component, so one body serves both lane types.
fn act(x: Lane) -> Lane {
  switch ACT {
    case 1u: {
      return select(u.alpha * x, x, x >= Lane());
    }
    case 2u: {
      return sigmoid(x);
    }
    case 3u: {
      return x * sigmoid(x);
    }
    default: {
      return max(x, Lane());
    }
  }
}

fn grad(x: Lane, dy: Lane) -> Lane {
  switch ACT {
    case 1u: {
      return dy * select(Lane(u.alpha), Lane(1.0), x > Lane());
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
      return dy * select(Lane(), Lane(1.0), x > Lane());
    }
  }
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let n = g.y;
  if (i >= u.per / LANE_WIDTH) {
    return;
  }
  Y[at(u.yOff, u.yBS, n, i)] = act(X[at(u.xOff, u.xBS, n, i)]);
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let n = g.y;
  if (i >= u.per / LANE_WIDTH) {
    return;
  }
  let d = grad(X[at(u.xOff, u.xBS, n, i)], DY[at(u.dyOff, u.dyBS, n, i)]);
  let o = at(u.dxOff, u.dxBS, n, i);
  // A branch, not select(): select() would read the destination even when overwriting it.
  if ((u.flags & 2u) != 0u) {
    DX[o] += d;
  } else {
    DX[o] = d;
  }
}
