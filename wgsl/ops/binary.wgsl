// Same-shape elementwise C = A op B, op chosen by OP: 0 add (YOLOv5's residual shortcuts), 1 multiply. Backward
// is dispatched once per input that needs a gradient: `backward` DX (+)= DC for add, `backwardProduct`
// DX (+)= DC * O for multiply, O being the other input (B for dA, A for dB); add's entry point leaves O unbound.
// Tensors are views: element i of batch item n lives at off + n * batchStride + i. Compiled once per Lane type
// (src/gpu/wgsl.ts lanePrelude): invocation (i, n) handles lane i of batch item n, one f32, or a vec4f where
// every view it touches is 4-aligned (offsets, batch strides and per-item element counts multiples of 4).
override WG: u32 = 64u;
override OP: u32 = 0u;

struct Params {
  count: u32, per: u32, _pad: u32, flags: u32, // flags: 2 = accumulate into dx
  aOff: u32, aBS: u32, bOff: u32, bBS: u32,
  cOff: u32, cBS: u32, dcOff: u32, dcBS: u32,
  dxOff: u32, dxBS: u32, oOff: u32, oBS: u32,
}

@group(0) @binding(0) var<storage, read> A: array<Lane>;
@group(0) @binding(1) var<storage, read> B: array<Lane>;
@group(0) @binding(2) var<storage, read_write> C: array<Lane>;
@group(0) @binding(3) var<storage, read> DC: array<Lane>;
@group(0) @binding(4) var<storage, read_write> DX: array<Lane>;
@group(0) @binding(5) var<uniform> u: Params;
@group(0) @binding(6) var<storage, read> O: array<Lane>;

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
  let a = A[at(u.aOff, u.aBS, n, i)];
  let b = B[at(u.bOff, u.bBS, n, i)];
  C[at(u.cOff, u.cBS, n, i)] = select(a + b, a * b, OP == 1u);
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
    DX[o] += DC[at(u.dcOff, u.dcBS, n, i)];
  } else {
    DX[o] = DC[at(u.dcOff, u.dcBS, n, i)];
  }
}

@compute @workgroup_size(WG)
fn backwardProduct(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let n = g.y;
  if (i >= u.per / LANE_WIDTH) {
    return;
  }
  let o = at(u.dxOff, u.dxBS, n, i);
  let grad = DC[at(u.dcOff, u.dcBS, n, i)] * O[at(u.oOff, u.oBS, n, i)];
  // A branch, not select(): select() would read the destination even when overwriting it.
  if ((u.flags & 2u) != 0u) {
    DX[o] += grad;
  } else {
    DX[o] = grad;
  }
}
