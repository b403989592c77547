// dst = src stored as Elem (the prelude's toElem4, src/gpu/wgsl.ts) over n4 vec4s: amp's f16 copy of the flat
// parameters, refreshed before each step's forward so the convs' GEMMs read the weights the optimizer left.
// Each invocation walks its own run of CHUNK vec4s, as the optimizer kernels do.
override WG: u32 = 64u;
override CHUNK: u32 = 256u;

struct Params { n4: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<storage, read> src: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<Elem>>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let end = min((gid.x + 1u) * CHUNK, p.n4);
  for (var i = gid.x * CHUNK; i < end; i = i + 1u) {
    dst[i] = toElem4(src[i]);
  }
}
