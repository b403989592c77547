// torch 1.13 Adam / AdamW (amsgrad off) over every group in one dispatch, gradients clipped on the fly:
//   Adam:  g = g*coef + wd*p            AdamW: p = p*(1 - lr*wd) (host-computed `decay`), g = g*coef
//   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
//   p = p - step_size * m / (sqrt(v)/sqrt(1-beta2^t) + eps),  step_size = lr/(1-beta1^t);  g = 0
// Bias corrections are computed in float64 on the host. Runs and tags as in sgd.wgsl.
override WG: u32 = 64u;
override CHUNK: u32 = 256u;
override DECOUPLED: bool = false;

struct Group { lr: f32, momentum: f32, wd: f32, step_size: f32, decay: f32, _p0: f32, _p1: f32, _p2: f32 }
struct Params {
  groups: array<Group, 3>,
  n4: u32, first_step: u32, beta2: f32, one_minus_beta1: f32,
  one_minus_beta2: f32, bc2_sqrt: f32, eps: f32, _pad: f32,
}

@group(0) @binding(0) var<storage, read_write> params: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> grads: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> m: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> v: array<vec4f>;
@group(0) @binding(4) var<storage, read> tags: array<u32>;
@group(0) @binding(5) var<storage, read> clip: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// The group's value for a tag, by selects on hoisted uniforms: indexing p.groups per invocation costs a
// per-lane uniform load for every field on lavapipe.
fn pick(tag: u32, a: f32, b: f32, c: f32) -> f32 {
  return select(select(a, b, tag == 1u), c, tag == 2u);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let coef = clip[1];
  // unscale.wgsl's overflow flag: GradScaler skips the step (the gradients are still consumed).
  let skip = bitcast<u32>(clip[2]) != 0u;
  let g0 = p.groups[0];
  let g1 = p.groups[1];
  let g2 = p.groups[2];
  let end = min((gid.x + 1u) * CHUNK, p.n4);
  for (var i = gid.x * CHUNK; i < end; i = i + 1u) {
    let tag = (tags[i >> 4u] >> ((i & 15u) * 2u)) & 3u;
    if (tag == 3u) {
      continue;
    }
    if (skip) {
      grads[i] = vec4f(0.0);
      continue;
    }
    let wd = pick(tag, g0.wd, g1.wd, g2.wd);
    var w = params[i];
    var g = grads[i] * coef;
    if (DECOUPLED) {
      w = w * pick(tag, g0.decay, g1.decay, g2.decay);
    } else {
      g = g + wd * w;
    }
    let mi = m[i] * pick(tag, g0.momentum, g1.momentum, g2.momentum) + p.one_minus_beta1 * g;
    let vi = v[i] * p.beta2 + p.one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    let step_size = pick(tag, g0.step_size, g1.step_size, g2.step_size);
    params[i] = w - step_size * (mi / (sqrt(vi) / p.bc2_sqrt + p.eps));
    grads[i] = vec4f(0.0);
  }
}
