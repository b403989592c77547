// torch 1.13 SGD (nesterov, dampening 0) over every group in one dispatch, gradients clipped on the fly:
//   d = g*coef + wd*p;  buf = first ? d : momentum*buf + d;  d = d + momentum*buf;  p = p - lr*d;  g = 0
// Each invocation walks its own run of CHUNK vec4s: on lavapipe that streams ~3x faster than a grid-stride loop.
// A 2-bit tag per vec4 (16 per u32) names the vec4's group, or 3 for frozen tensors and gaps, which are skipped.
override WG: u32 = 64u;
override CHUNK: u32 = 256u;

struct Group { lr: f32, momentum: f32, wd: f32, step_size: f32, decay: f32, _p0: f32, _p1: f32, _p2: f32 }
struct Params {
  groups: array<Group, 3>,
  n4: u32, first_step: u32, beta2: f32, one_minus_beta1: f32,
  one_minus_beta2: f32, bc2_sqrt: f32, eps: f32, _pad: f32,
}

@group(0) @binding(0) var<storage, read_write> params: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> grads: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> buf: array<vec4f>;
@group(0) @binding(3) var<storage, read> tags: array<u32>;
@group(0) @binding(4) var<storage, read> clip: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

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
    let lr = pick(tag, g0.lr, g1.lr, g2.lr);
    let momentum = pick(tag, g0.momentum, g1.momentum, g2.momentum);
    let wd = pick(tag, g0.wd, g1.wd, g2.wd);
    let w = params[i];
    let d = grads[i] * coef + wd * w;
    var b = d;
    if (p.first_step == 0u) {
      b = buf[i] * momentum + d;
    }
    buf[i] = b;
    params[i] = w - lr * (d + momentum * b);
    grads[i] = vec4f(0.0);
  }
}
