// BatchNormalization in training mode (NCHW): batch statistics over (N, H, W) per channel, the biased
// variance to normalise, running statistics updated with the unbiased variance (PyTorch: new = (1 - m) * old
// + m * batch).
//   stats:          a workgroup per channel: two-pass mean and variance -> Stats[c] = (mean, 1/sqrt(var+eps))
//   eval_stats:     evaluation mode instead: Stats[c] = (running mean, 1/sqrt(running var + eps))
// u.n is the batch items the statistics cover: a short last batch sets it below the planned N, and the padding
// items past it get no share of the statistics and a zero dx.
//   forward:        y = gamma * (x - mean) * invstd + beta, plane n * C + c = workgroup_id.y
//   backward_stats: one workgroup per channel: Stats[c].zw = (sum dy, sum dy * xhat); dgamma, dbeta += those
//   backward:       dx (+)= gamma * invstd / M * (M * dy - sum dy - xhat * sum dy * xhat)
override WG: u32 = 64u;

struct Params {
  n: u32, c: u32, plane: u32, flags: u32, // flags: 2 = accumulate into dx, 4 = update running stats,
  xOff: u32, xBS: u32, yOff: u32, yBS: u32, // 8 = add parameter gradients
  dyOff: u32, dyBS: u32, dxOff: u32, dxBS: u32,
  gammaOff: u32, betaOff: u32, meanOff: u32, varOff: u32,
  dgammaOff: u32, dbetaOff: u32, eps: f32, momentum: f32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> Gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> Stats: array<vec4f>;
@group(0) @binding(4) var<uniform> u: Params;
@group(0) @binding(5) var<storage, read_write> Running: array<f32>;
@group(0) @binding(6) var<storage, read> DY: array<f32>;
@group(0) @binding(7) var<storage, read_write> DX: array<f32>;
@group(0) @binding(8) var<storage, read_write> G: array<f32>;
@group(0) @binding(9) var<storage, read> Beta: array<f32>;

var<workgroup> partA: array<f32, WG>;
var<workgroup> partB: array<f32, WG>;

// Workgroup sums of a and b (every lane gets them). WG must be a power of two.
fn reduce2(l: u32, a: f32, b: f32) -> vec2f {
  partA[l] = a;
  partB[l] = b;
  for (var span = WG / 2u; span > 0u; span /= 2u) {
    workgroupBarrier();
    if (l < span) {
      partA[l] += partA[l + span];
      partB[l] += partB[l + span];
    }
  }
  workgroupBarrier();
  let out = vec2f(partA[0], partB[0]);
  workgroupBarrier();
  return out;
}

fn xAt(n: u32, ch: u32, i: u32) -> u32 {
  return u.xOff + n * u.xBS + ch * u.plane + i;
}

@compute @workgroup_size(WG)
fn stats(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let ch = wg.x;
  let l = lid.x;
  let count = f32(u.n * u.plane);
  var s = 0.0;
  for (var n = 0u; n < u.n; n++) {
    for (var i = l; i < u.plane; i += WG) {
      s += X[xAt(n, ch, i)];
    }
  }
  let mean = reduce2(l, s, 0.0).x / count;
  var q = 0.0;
  for (var n = 0u; n < u.n; n++) {
    for (var i = l; i < u.plane; i += WG) {
      let d = X[xAt(n, ch, i)] - mean;
      q += d * d;
    }
  }
  let sq = reduce2(l, q, 0.0).x;
  if (l == 0u) {
    let variance = sq / count;
    Stats[ch] = vec4f(mean, inverseSqrt(variance + u.eps), 0.0, 0.0);
    if ((u.flags & 4u) != 0u) {
      let m = u.momentum;
      Running[u.meanOff + ch] = (1.0 - m) * Running[u.meanOff + ch] + m * mean;
      Running[u.varOff + ch] = (1.0 - m) * Running[u.varOff + ch] + m * sq / max(count - 1.0, 1.0);
    }
  }
}

@compute @workgroup_size(WG)
fn eval_stats(@builtin(global_invocation_id) gid: vec3u) {
  let ch = gid.x;
  if (ch >= u.c) {
    return;
  }
  Stats[ch] = vec4f(Running[u.meanOff + ch], inverseSqrt(Running[u.varOff + ch] + u.eps), 0.0, 0.0);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = wg.x * WG + lid.x;
  if (i >= u.plane) {
    return;
  }
  let n = wg.y / u.c;
  let ch = wg.y % u.c;
  let st = Stats[ch];
  let xhat = (X[xAt(n, ch, i)] - st.x) * st.y;
  Y[u.yOff + n * u.yBS + ch * u.plane + i] = Gamma[u.gammaOff + ch] * xhat + Beta[u.betaOff + ch];
}

@compute @workgroup_size(WG)
fn backward_stats(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let ch = wg.x;
  let l = lid.x;
  let st = Stats[ch];
  var sdy = 0.0;
  var sdyx = 0.0;
  for (var n = 0u; n < u.n; n++) {
    for (var i = l; i < u.plane; i += WG) {
      let dy = DY[u.dyOff + n * u.dyBS + ch * u.plane + i];
      sdy += dy;
      sdyx += dy * (X[xAt(n, ch, i)] - st.x) * st.y;
    }
  }
  let sums = reduce2(l, sdy, sdyx);
  if (l == 0u) {
    Stats[ch] = vec4f(st.x, st.y, sums.x, sums.y);
    if ((u.flags & 8u) != 0u) {
      G[u.dgammaOff + ch] += sums.y;
      G[u.dbetaOff + ch] += sums.x;
    }
  }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = wg.x * WG + lid.x;
  if (i >= u.plane) {
    return;
  }
  let n = wg.y / u.c;
  let ch = wg.y % u.c;
  let st = Stats[ch];
  let count = f32(u.n * u.plane);
  let at = u.dxOff + n * u.dxBS + ch * u.plane + i;
  if (n >= u.n) {
    if ((u.flags & 2u) == 0u) {
      DX[at] = 0.0;
    }
    return;
  }
  let xhat = (X[xAt(n, ch, i)] - st.x) * st.y;
  let dy = DY[u.dyOff + n * u.dyBS + ch * u.plane + i];
  let dx = Gamma[u.gammaOff + ch] * st.y / count * (count * dy - st.z - xhat * st.w);
  // A branch, not select(): select() would read the destination even when overwriting it.
  if ((u.flags & 2u) != 0u) {
    DX[at] += dx;
  } else {
    DX[at] = dx;
  }
}
