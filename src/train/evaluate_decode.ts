/**
 * The Detect head's eval-mode decode (docs/training.md §7.1), exactly what the exported ONNX graph computes
 * after the three head convs, in float32: xy = (2σ + (cell − 0.5))·stride, wh = (2σ)²·anchor_px, obj and
 * classes = σ. Used to evaluate the raw head logits the training program produces without running the serving
 * graph.
 */

/** The Detect head's geometry, as recovered from the ONNX graph. */
export interface HeadSpec {
  nc: number;
  /** per layer, e.g. [8, 16, 32] */
  strides: readonly number[];
  /** per layer, anchor (w, h) pairs in input pixels, e.g. [[10, 13, 16, 30, 33, 23], ...] */
  anchors: readonly (readonly number[])[];
}

/** One layer's raw logits, laid out (bs, na, ny, nx, no). */
export interface HeadLayer {
  data: Float32Array;
  ny: number;
  nx: number;
}

/** One head conv's output (count, na*no, ny, nx), of a batch planned for shape[0], as a HeadLayer. */
export function headLayer(
  conv: Float32Array,
  count: number,
  na: number,
  shape: readonly number[],
): HeadLayer {
  const [, c, ny, nx] = shape;
  const no = c / na, hw = ny * nx;
  const data = new Float32Array(count * na * hw * no);
  for (let b = 0; b < count; b++) {
    for (let a = 0; a < na; a++) {
      for (let k = 0; k < no; k++) {
        const src = ((b * na + a) * no + k) * hw, dst = (b * na + a) * hw * no + k;
        for (let s = 0; s < hw; s++) data[dst + s * no] = conv[src + s];
      }
    }
  }
  return { data, ny, nx };
}

const f = Math.fround;
const sigmoid = (x: number) => f(1 / (1 + Math.exp(-x)));

/**
 * Decodes a batch of raw head outputs into one (rows × no) Float32Array per image; rows go layer by layer, then
 * anchor, grid row, grid column, as the ONNX output concatenates them.
 */
export function decodeHeads(layers: readonly HeadLayer[], spec: HeadSpec, batchSize: number): Float32Array[] {
  const no = spec.nc + 5;
  const na = spec.anchors[0].length / 2;
  const rowsPerImage = layers.reduce((s, l) => s + na * l.ny * l.nx, 0);
  const out = Array.from({ length: batchSize }, () => new Float32Array(rowsPerImage * no));
  layers.forEach((layer, li) => {
    const { ny, nx, data } = layer;
    if (data.length !== batchSize * na * ny * nx * no) {
      throw new Error(
        `Head layer ${li}: ${data.length} values, expected ${batchSize}x${na}x${ny}x${nx}x${no}`,
      );
    }
    const stride = spec.strides[li];
    const base = layers.slice(0, li).reduce((s, l) => s + na * l.ny * l.nx, 0);
    for (let b = 0; b < batchSize; b++) {
      const dst = out[b];
      for (let a = 0; a < na; a++) {
        const aw = spec.anchors[li][2 * a], ah = spec.anchors[li][2 * a + 1];
        for (let y = 0; y < ny; y++) {
          for (let x = 0; x < nx; x++) {
            const cell = (a * ny + y) * nx + x;
            const src = ((b * na) * ny * nx + cell) * no;
            const o = (base + cell) * no;
            const sx = f(2 * sigmoid(data[src])), sy = f(2 * sigmoid(data[src + 1]));
            const sw = f(2 * sigmoid(data[src + 2])), sh = f(2 * sigmoid(data[src + 3]));
            dst[o] = f(f(sx + f(x - 0.5)) * stride);
            dst[o + 1] = f(f(sy + f(y - 0.5)) * stride);
            dst[o + 2] = f(f(sw * sw) * aw);
            dst[o + 3] = f(f(sh * sh) * ah);
            for (let k = 4; k < no; k++) dst[o + k] = sigmoid(data[src + k]);
          }
        }
      }
    }
  });
  return out;
}
