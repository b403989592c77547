// clip_grad_norm_(max_norm) coefficient, on the GPU so clipping needs no readback: state[0] holds the gradients'
// sum of squares on entry and their L2 norm on exit; state[1] = min(max_norm / (norm + 1e-6), 1), which torch
// multiplies into every gradient even when it is 1.
struct Params { max_norm: f32, _p0: f32, _p1: f32, _p2: f32 }

@group(0) @binding(0) var<storage, read_write> state: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(1)
fn main() {
  let norm = sqrt(state[0]);
  state[0] = norm;
  state[1] = min(p.max_norm / (norm + 1e-6), 1.0);
}
