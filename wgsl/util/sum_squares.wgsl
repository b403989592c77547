// Sum of squares of a vec4 buffer in two passes: `partial` leaves one sum per workgroup (each invocation sums its
// own run of CHUNK vec4s in four lanes, then a workgroup tree), `finish` adds those up in one workgroup. Short
// serial runs plus tree sums keep the f32 error near log2(n) ulps. Contiguous runs stream best on lavapipe.
const WG: u32 = 64u;
override CHUNK: u32 = 256u;

struct Params { n4: u32, partials: u32, out_index: u32, _pad: u32 }

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> partial_sums: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> acc: array<f32, WG>;

fn tree(lid: u32) {
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (lid < s) {
      acc[lid] = acc[lid] + acc[lid + s];
    }
  }
}

@compute @workgroup_size(WG)
fn partial(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_index) lid: u32,
           @builtin(workgroup_id) wid: vec3u) {
  var s = vec4f(0.0);
  let end = min((gid.x + 1u) * CHUNK, p.n4);
  for (var i = gid.x * CHUNK; i < end; i = i + 1u) {
    let v = x[i];
    s = s + v * v;
  }
  acc[lid] = (s.x + s.y) + (s.z + s.w);
  tree(lid);
  if (lid == 0u) {
    partial_sums[wid.x] = acc[0];
  }
}

@compute @workgroup_size(WG)
fn finish(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.partials; i = i + WG) {
    s = s + partial_sums[i];
  }
  acc[lid] = s;
  tree(lid);
  if (lid == 0u) {
    out[p.out_index] = acc[0];
  }
}
