// y += x over n4 vec4s: sums a batch's gradients into an accumulation buffer.
// Each invocation walks its own run of CHUNK vec4s (streams best on lavapipe).
override WG: u32 = 64u;
override CHUNK: u32 = 256u;

struct Params { n4: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let end = min((gid.x + 1u) * CHUNK, p.n4);
  for (var i = gid.x * CHUNK; i < end; i = i + 1u) {
    y[i] = y[i] + x[i];
  }
}
