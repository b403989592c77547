// Workgroup-tiled GEMMs: the `tiled` kernel family (src/ops/kernel_family.ts) of conv's three products, for
// hardware adapters. (Lavapipe keeps wgsl/ops/conv.wgsl's register-blocked kernels: it has no fast shared
// memory, and there these run several times slower; they are tested there all the same.)
//   gemm_nn: C[z] (+)= A[z] . B[z] (+ bias): forward Y_n = W . col_n, backward-data dcol_n = W^T . dY_n
//   gemm_nt: Part[z] = A[item] . B[item]^T over split z's share of k: the weight gradient dY_n . col_n^T, its
//            pixel reduction cut into splits that run side by side (reduced by conv.wgsl's `reduce`)
// A workgroup computes a BM x BN block of C; each of its (BN/TN) x (BM/TM) invocations owns TM x TN of that
// block in vec4 registers. k advances in steps of BK: each step's A slice (BM x BK) and B slice (BK x BN) are
// staged in workgroup memory, where every invocation of the workgroup reads them: each global element is loaded
// once per workgroup instead of once per invocation (BN/TN resp. BM/TM times less global traffic than the
// register family). The slices are double-buffered: while a step computes on one pair, the next step's
// elements are loaded from global memory into registers and stored into the other pair after the arithmetic,
// so load latency overlaps the FMAs and one barrier per step suffices.
// Defaults (64 x 64 blocks, 4 x 4 per invocation, BK 16): 256 invocations (WebGPU's guaranteed maximum), one
// vec4 of A and one of B loaded per invocation per step, 16 KiB of workgroup memory (the guaranteed minimum
// limit), 16 FMAs per 2 vec4 reads of workgroup memory. src/ops/gemm_tiled.ts picks the tile per layer.
// The operands (A, A4, B4) are stored as `Elem`, f32 or f16 (amp), by the prelude the loader puts in front
// (src/gpu/wgsl.ts elemPrelude), as in wgsl/ops/conv.wgsl: they are widened to f32 as they are loaded, so the
// workgroup slices, every product and every sum are f32. C, Bias and Post are always f32.
override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;
// Rows and columns per invocation: TM a multiple of 4 up to 8, TN 4 or 8 (one or two vec4s per row).
override TM: u32 = 4u;
override TN: u32 = 4u;
// gemm_nn: A's elements run contiguously along k (row-major W: forward) or along m (W^T: backward-data);
// neighbouring invocations load neighbouring addresses either way.
override A_ALONG_K: bool = true;

override THREADS: u32 = (BM / TM) * (BN / TN);
// vec4 loads per invocation per step, of A's slice and of B's (at most MAX_QUADS; gemm_tiled.ts checks).
override QUADS_A: u32 = (BM * BK / 4u + THREADS - 1u) / THREADS;
override QUADS_B: u32 = (BK * BN / 4u + THREADS - 1u) / THREADS;
const MAX_QUADS = 4u;
// Accumulators: TM rows of TN / 4 vec4s.
const MAX_ACC = 16u;

struct Params {
  M: u32, N: u32, K: u32, flags: u32, // flags: 1 = add bias, 2 = accumulate into C, 4 = gemm_nn writes silu(C) to Post
  aOff: u32, am: u32, ak: u32, aBatch: u32, // A(m, k) at aOff + item*aBatch + m*am + k*ak (gemm_nn, floats)
  bOff4: u32, ldb4: u32, bBatch4: u32, biasOff: u32, // B's vec4 rows (gemm_nn: k rows of n; gemm_nt: n rows of k)
  cOff: u32, ldc: u32, cBatch: u32, splits: u32, // C(m, n) at cOff + z*cBatch + m*ldc + n
  chunk4: u32, aOff4: u32, am4: u32, aBatch4: u32, // gemm_nt: vec4s of k per split; A's vec4 rows of k
  postOff: u32, postBS: u32, _pad0: u32, _pad1: u32, // Post(m, n) at postOff + z*postBS + m*ldc + n
}

@group(0) @binding(0) var<storage, read> A: array<Elem>;
@group(0) @binding(1) var<storage, read> A4: array<vec4<Elem>>;
@group(0) @binding(2) var<storage, read> B4: array<vec4<Elem>>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> Bias: array<f32>;
@group(0) @binding(5) var<uniform> u: Params;
// A SiLU fused after the conv (src/ops/conv.ts ConvArgs.silu): its output, a view of its own.
@group(0) @binding(6) var<storage, read_write> Post: array<f32>;

// [buffer][k][m / 4] and [buffer][k][n / 4]: an invocation reads its TM rows and TN columns of one k as vec4s.
var<workgroup> As: array<vec4f, 2u * BK * BM / 4u>;
var<workgroup> Bs: array<vec4f, 2u * BK * BN / 4u>;

// One step's global loads, held in registers until the step's arithmetic is done: quad i of invocation t is
// quad t + i * THREADS of the slice (neighbouring invocations, neighbouring quads).
struct Staged {
  a: array<vec4f, MAX_QUADS>,
  b: array<vec4f, MAX_QUADS>,
}

// Where a workgroup's block lies and which k range it reduces over.
struct Block {
  m0: u32, n0: u32, item: u32, // first row and column of the block; batch item of A and B
  k1: u32, // end of k (gemm_nn: elements; gemm_nt: vec4s)
  t: u32, // this invocation's index in the workgroup
}

fn aAt(b: Block, m: u32, k: u32) -> f32 {
  let at = u.aOff + b.item * u.aBatch + min(m, u.M - 1u) * u.am + min(k, b.k1 - 1u) * u.ak;
  return select(0.0, f32(A[at]), m < u.M && k < b.k1);
}

// gemm_nn, the step starting at k: A quads are 4 consecutive elements along A's contiguous axis, B quads a vec4
// of a k row (B's rows are padded to vec4s). Past M, N or k1 they are zeros.
fn loadNN(b: Block, k: u32) -> Staged {
  var s: Staged;
  for (var i = 0u; i < QUADS_A; i++) {
    let e = b.t + i * THREADS;
    if (A_ALONG_K) {
      let m = b.m0 + e / (BK / 4u);
      let kk = k + (e % (BK / 4u)) * 4u;
      s.a[i] = vec4f(aAt(b, m, kk), aAt(b, m, kk + 1u), aAt(b, m, kk + 2u), aAt(b, m, kk + 3u));
    } else {
      let m = b.m0 + (e % (BM / 4u)) * 4u;
      let kk = k + e / (BM / 4u);
      s.a[i] = vec4f(aAt(b, m, kk), aAt(b, m + 1u, kk), aAt(b, m + 2u, kk), aAt(b, m + 3u, kk));
    }
  }
  let n4s = (u.N + 3u) / 4u;
  for (var i = 0u; i < QUADS_B; i++) {
    let e = b.t + i * THREADS;
    let n4 = b.n0 / 4u + e % (BN / 4u);
    let kk = k + e / (BN / 4u);
    let at = u.bOff4 + b.item * u.bBatch4 + min(kk, b.k1 - 1u) * u.ldb4 + min(n4, n4s - 1u);
    s.b[i] = select(vec4f(), vec4f(B4[at]), n4 < n4s && kk < b.k1);
  }
  return s;
}

fn storeNN(buf: u32, t: u32, s: Staged) {
  for (var i = 0u; i < QUADS_A; i++) {
    let e = t + i * THREADS;
    if (e < BM * BK / 4u) {
      if (A_ALONG_K) {
        scatterA(buf, e / (BK / 4u), (e % (BK / 4u)) * 4u, s.a[i]);
      } else {
        As[(buf * BK + e / (BM / 4u)) * (BM / 4u) + e % (BM / 4u)] = s.a[i];
      }
    }
  }
  for (var i = 0u; i < QUADS_B; i++) {
    let e = t + i * THREADS;
    if (e < BK * BN / 4u) {
      Bs[buf * BK * (BN / 4u) + e] = s.b[i];
    }
  }
}

// A quad of row m holding k .. k+3, written into the slice's k rows.
fn scatterA(buf: u32, m: u32, k: u32, v: vec4f) {
  for (var c = 0u; c < 4u; c++) {
    As[(buf * BK + k + c) * (BM / 4u) + m / 4u][m % 4u] = v[c];
  }
}

// gemm_nt, the step starting at vec4 k4: both operands are rows of k read as vec4s (A: dY's pixel rows, B: the
// columns' rows), so a quad is 4 consecutive k of one row.
fn loadNT(b: Block, k4: u32) -> Staged {
  var s: Staged;
  for (var i = 0u; i < QUADS_A; i++) {
    let e = b.t + i * THREADS;
    let m = b.m0 + e / (BK / 4u);
    let kk = k4 + e % (BK / 4u);
    let at = u.aOff4 + b.item * u.aBatch4 + min(m, u.M - 1u) * u.am4 + min(kk, b.k1 - 1u);
    s.a[i] = select(vec4f(), vec4f(A4[at]), m < u.M && kk < b.k1);
  }
  for (var i = 0u; i < QUADS_B; i++) {
    let e = b.t + i * THREADS;
    let n = b.n0 + e / (BK / 4u);
    let kk = k4 + e % (BK / 4u);
    let at = u.bOff4 + b.item * u.bBatch4 + min(n, u.N - 1u) * u.ldb4 + min(kk, b.k1 - 1u);
    s.b[i] = select(vec4f(), vec4f(B4[at]), n < u.N && kk < b.k1);
  }
  return s;
}

fn storeNT(buf: u32, t: u32, s: Staged) {
  for (var i = 0u; i < QUADS_A; i++) {
    let e = t + i * THREADS;
    if (e < BM * BK / 4u) {
      scatterA(buf, e / (BK / 4u), (e % (BK / 4u)) * 4u, s.a[i]);
    }
  }
  for (var i = 0u; i < QUADS_B; i++) {
    let e = t + i * THREADS;
    if (e < BK * BN / 4u) {
      let n = e / (BK / 4u);
      let k = (e % (BK / 4u)) * 4u;
      for (var c = 0u; c < 4u; c++) {
        Bs[(buf * BK + k + c) * (BN / 4u) + n / 4u][n % 4u] = s.b[i][c];
      }
    }
  }
}

// acc += the slices' product for this invocation's TM x TN: row r's vec4 j is acc[r * (TN / 4) + j].
fn multiply(acc: ptr<function, array<vec4f, MAX_ACC>>, buf: u32, l: vec3u) {
  for (var k = 0u; k < BK; k++) {
    let ar = (buf * BK + k) * (BM / 4u) + l.y * (TM / 4u);
    let br = (buf * BK + k) * (BN / 4u) + l.x * (TN / 4u);
    for (var j = 0u; j < TN / 4u; j++) {
      let bv = Bs[br + j];
      for (var i4 = 0u; i4 < TM / 4u; i4++) {
        let av = As[ar + i4];
        let r = i4 * 4u * (TN / 4u) + j;
        (*acc)[r] = fma(vec4f(av.x), bv, (*acc)[r]);
        (*acc)[r + TN / 4u] = fma(vec4f(av.y), bv, (*acc)[r + TN / 4u]);
        (*acc)[r + 2u * (TN / 4u)] = fma(vec4f(av.z), bv, (*acc)[r + 2u * (TN / 4u)]);
        (*acc)[r + 3u * (TN / 4u)] = fma(vec4f(av.w), bv, (*acc)[r + 3u * (TN / 4u)]);
      }
    }
  }
}

// C(m, n) of block z (+)= acc (+ bias) for the rows and columns inside M x N.
fn storeBlock(acc: array<vec4f, MAX_ACC>, b: Block, z: u32, l: vec3u) {
  let accumulate = (u.flags & 2u) != 0u;
  for (var r = 0u; r < TM; r++) {
    let m = b.m0 + l.y * TM + r;
    if (m >= u.M) {
      break;
    }
    let bias = select(0.0, Bias[u.biasOff + m], (u.flags & 1u) != 0u);
    let row = u.cOff + z * u.cBatch + m * u.ldc;
    for (var j = 0u; j < TN / 4u; j++) {
      let v = acc[r * (TN / 4u) + j] + bias;
      for (var c = 0u; c < 4u; c++) {
        let n = b.n0 + l.x * TN + j * 4u + c;
        if (n < u.N) {
          // A branch, not select(): select() would read the destination even when overwriting it.
          if (accumulate) {
            C[row + n] += v[c];
          } else {
            C[row + n] = v[c];
          }
        }
      }
    }
  }
}

// Post(m, n) of block z = silu(acc + bias), computed as wgsl/ops/activation.wgsl computes it from the value
// storeBlock stored (same f32 results as the unfused pass). Kept apart from storeBlock on purpose: gemm_nt's
// bind group has no Post, and a pipeline's automatic layout holds every binding its entry point statically uses
// (folding this into storeBlock made every tiled dispatch fail validation).
fn storeSilu(acc: array<vec4f, MAX_ACC>, b: Block, z: u32, l: vec3u) {
  for (var r = 0u; r < TM; r++) {
    let m = b.m0 + l.y * TM + r;
    if (m >= u.M) {
      break;
    }
    let bias = select(0.0, Bias[u.biasOff + m], (u.flags & 1u) != 0u);
    let row = u.postOff + z * u.postBS + m * u.ldc;
    for (var j = 0u; j < TN / 4u; j++) {
      let x = acc[r * (TN / 4u) + j] + bias;
      let v = x * (1.0 / (1.0 + exp(-x)));
      for (var c = 0u; c < 4u; c++) {
        let n = b.n0 + l.x * TN + j * 4u + c;
        if (n < u.N) {
          Post[row + n] = v[c];
        }
      }
    }
  }
}

// C[z] (+)= A[z] . B[z] (+ bias), z the batch item: workgroup (x, y) computes columns x*BN.. and rows y*BM...
@compute @workgroup_size(BN / TN, BM / TM)
fn gemm_nn(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let b = Block(wg.y * BM, wg.x * BN, wg.z, u.K, l.y * (BN / TN) + l.x);
  var acc: array<vec4f, MAX_ACC>;
  let steps = (u.K + BK - 1u) / BK;
  storeNN(0u, b.t, loadNN(b, 0u));
  workgroupBarrier();
  for (var s = 0u; s < steps; s++) {
    let more = s + 1u < steps;
    var next: Staged;
    if (more) {
      next = loadNN(b, (s + 1u) * BK);
    }
    multiply(&acc, s % 2u, l);
    if (more) {
      storeNN(1u - s % 2u, b.t, next);
    }
    workgroupBarrier();
  }
  storeBlock(acc, b, wg.z, l);
  if ((u.flags & 4u) != 0u) {
    storeSilu(acc, b, wg.z, l);
  }
}

// Part[z] = sum over split z's vec4s of k of A[item] . B[item]^T, z = item * splits + split (u.K: vec4s of k
// per row, u.chunk4 per split, a multiple of BK / 4).
@compute @workgroup_size(BN / TN, BM / TM)
fn gemm_nt(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let k0 = (wg.z % u.splits) * u.chunk4;
  let k1 = max(k0, min(k0 + u.chunk4, u.K));
  let b = Block(wg.y * BM, wg.x * BN, wg.z / u.splits, k1, l.y * (BN / TN) + l.x);
  var acc: array<vec4f, MAX_ACC>;
  let steps = (k1 - k0 + BK / 4u - 1u) / (BK / 4u);
  if (steps > 0u) {
    storeNT(0u, b.t, loadNT(b, k0));
  }
  workgroupBarrier();
  for (var s = 0u; s < steps; s++) {
    let more = s + 1u < steps;
    var next: Staged;
    if (more) {
      next = loadNT(b, k0 + (s + 1u) * (BK / 4u));
    }
    multiply(&acc, s % 2u, l);
    if (more) {
      storeNT(1u - s % 2u, b.t, next);
    }
    workgroupBarrier();
  }
  storeBlock(acc, b, wg.z, l);
}
