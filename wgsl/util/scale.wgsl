// x[i] *= s for i < n: the smallest kernel, used to scale gradients (e.g. by a clipping coefficient).
override WG: u32 = 64u;

struct Params { s: f32, n: u32 }

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < p.n) {
    x[gid.x] = x[gid.x] * p.s;
  }
}
