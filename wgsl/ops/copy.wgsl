// Copy between views, y = x: Concat and Split where producers cannot write into (or consumers read from) a
// channel slice directly; backward dx (+)= dy.
// Tensors are views: element i of batch item n lives at off + n * batchStride + i; invocation (i, n) handles lane
// i of batch item n (src/gpu/wgsl.ts lanePrelude).
override WG: u32 = 64u;

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

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let n = g.y;
  if (i >= u.per / LANE_WIDTH) {
    return;
  }
  Y[at(u.yOff, u.yBS, n, i)] = X[at(u.xOff, u.xBS, n, i)];
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let n = g.y;
  if (i >= u.per / LANE_WIDTH) {
    return;
  }
  let o = at(u.dxOff, u.dxBS, n, i);
  // A branch, not select(): select() would read the destination even when overwriting it.
  if ((u.flags & 2u) != 0u) {
    DX[o] += DY[at(u.dyOff, u.dyBS, n, i)];
  } else {
    DX[o] = DY[at(u.dyOff, u.dyBS, n, i)];
  }
}
