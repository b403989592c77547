// The backward of a SiLU fused after a conv with bias (src/ops/conv.ts ConvArgs.silu), in one pass over the
// activation's gradient: dX = dY * silu'(X) where the conv's backward reads its output gradient (X the conv's
// output, which its forward wrote beside silu(X)), and dB += the sum of dX over batch and pixels. Unfused, the
// activation's backward writes dX and the conv's bias_grad reads it all again.
// One workgroup per output channel c; its lanes stride over the channel's pixels and add their sums at the end.
override WG: u32 = 64u;

struct Params {
  batch: u32, P: u32, dbOff: u32, _pad: u32, // images, pixels per channel map, where dB[0] is
  xOff: u32, xBS: u32, dyOff: u32, dyBS: u32, // X and dY: channel c of image n at off + n * BS + c * P
  dxOff: u32, dxBS: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> DY: array<f32>;
@group(0) @binding(2) var<storage, read_write> DX: array<f32>;
@group(0) @binding(3) var<storage, read_write> DB: array<f32>;
@group(0) @binding(4) var<uniform> u: Params;
@group(0) @binding(5) var<storage, read> X4: array<vec4f>;
@group(0) @binding(6) var<storage, read> DY4: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> DX4: array<vec4f>;

// dy * silu'(x), as wgsl/ops/activation.wgsl's SiLU backward computes it.
fn siluGrad(x: vec4f, dy: vec4f) -> vec4f {
  let s = 1.0 / (1.0 + exp(-x));
  return dy * s * (1.0 + x * (1.0 - s));
}

var<workgroup> partial: array<f32, WG>;

// Adds the lanes' sums and adds the total into dB[c].
fn addToBias(c: u32, lane: u32, sum: f32) {
  partial[lane] = sum;
  for (var span = WG / 2u; span > 0u; span /= 2u) {
    workgroupBarrier();
    if (lane < span) {
      partial[lane] += partial[lane + span];
    }
  }
  if (lane == 0u) {
    DB[u.dbOff + c] += partial[0];
  }
}

@compute @workgroup_size(WG)
fn silu_bias_grad(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let c = wg.x;
  var sum = 0.0;
  for (var n = 0u; n < u.batch; n++) {
    let x = u.xOff + n * u.xBS + c * u.P;
    let dy = u.dyOff + n * u.dyBS + c * u.P;
    let dx = u.dxOff + n * u.dxBS + c * u.P;
    for (var p = l.x; p < u.P; p += WG) {
      let d = siluGrad(vec4f(X[x + p]), vec4f(DY[dy + p])).x;
      DX[dx + p] = d;
      sum += d;
    }
  }
  addToBias(c, l.x, sum);
}

// silu_bias_grad for views whose offsets, batch strides and P are multiples of 4: a quarter of the per-lane
// loads, which bound lavapipe.
@compute @workgroup_size(WG)
fn silu_bias_grad_vec4(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let c = wg.x;
  let P4 = u.P / 4u;
  var sum = vec4f();
  for (var n = 0u; n < u.batch; n++) {
    let x = (u.xOff + n * u.xBS + c * u.P) / 4u;
    let dy = (u.dyOff + n * u.dyBS + c * u.P) / 4u;
    let dx = (u.dxOff + n * u.dxBS + c * u.P) / 4u;
    for (var p = l.x; p < P4; p += WG) {
      let d = siluGrad(X4[x + p], DY4[dy + p]);
      DX4[dx + p] = d;
      sum += d;
    }
  }
  addToBias(c, l.x, sum.x + sum.y + sum.z + sum.w);
}
