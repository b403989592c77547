// GradScaler.unscale_ over the flat gradients (torch's _amp_foreach_non_finite_check_and_unscale_): every
// gradient is multiplied by inv_scale = f32(1/S), and state[FOUND] is raised when any incoming value is inf or
// NaN (the optimizer kernels then skip the step). Non-finite is read off the bits (exponent all ones): WGSL lets
// compilers assume floats are finite, so `x != x` or a comparison with infinity may be folded away.
// Each invocation walks its own run of CHUNK vec4s, as in sgd.wgsl.
override WG: u32 = 64u;
override CHUNK: u32 = 256u;
// Index of the overflow flag in the optimizer's clip state ([norm, coef, found_inf, -]).
override FOUND: u32 = 2u;

struct Params { n4: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<storage, read_write> grads: array<vec4f>;
// [S, f32(1/S)], written by the host when the scale changes.
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> p: Params;

const EXPONENT: u32 = 0x7f800000u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let inv = scale[1];
  let end = min((gid.x + 1u) * CHUNK, p.n4);
  var found = false;
  for (var i = gid.x * CHUNK; i < end; i = i + 1u) {
    let g = grads[i];
    found = found || any((bitcast<vec4u>(g) & vec4u(EXPONENT)) == vec4u(EXPONENT));
    grads[i] = g * inv;
  }
  if (found) {
    atomicOr(&state[FOUND], 1u);
  }
}
