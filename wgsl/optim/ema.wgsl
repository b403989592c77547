// ModelEMA update of one flat buffer: ema = d*ema + (1-d)*model, with d and 1-d computed in float64 on the host
// (torch multiplies by the Python floats rounded to f32).
// Each invocation walks its own run of CHUNK vec4s (streams best on lavapipe).
override WG: u32 = 64u;
override CHUNK: u32 = 256u;

struct Params { d: f32, one_minus_d: f32, n4: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read_write> ema: array<vec4f>;
@group(0) @binding(1) var<storage, read> model: array<vec4f>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let end = min((gid.x + 1u) * CHUNK, p.n4);
  for (var i = gid.x * CHUNK; i < end; i = i + 1u) {
    ema[i] = ema[i] * p.d + p.one_minus_d * model[i];
  }
}
