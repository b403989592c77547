/**
 * YOLOv5's three optimizer parameter groups over the flat parameter layout (docs/training.md §1.1): 0 =
 * biases (no decay), 1 = conv/gemm weights (decay), 2 = normalisation weights (no decay). The layout itself
 * is built from the graph by src/train/param_layout.ts; this module only needs the fields below, so any
 * ParamEntry[] fits.
 */
export type ParamRole = "bias" | "weight" | "norm_weight";
export type GroupIndex = 0 | 1 | 2;
export type OptimizerName = "SGD" | "Adam" | "AdamW";

export interface LayoutEntry {
  name: string;
  shape: number[];
  /** In f32 elements; a multiple of 4 so vec4 kernels never straddle two tensors. */
  offset: number;
  size: number;
  role: ParamRole;
  group: GroupIndex;
  frozen: boolean;
}

/** Group of a role, in train.py's v7.0 param_groups order. */
export function groupOfRole(role: ParamRole): GroupIndex {
  return role === "bias" ? 0 : role === "weight" ? 1 : 2;
}

/** Throws unless every tensor is vec4-aligned, sized like its shape, in its role's group, and disjoint. */
export function validateLayout(layout: readonly LayoutEntry[]): void {
  const sorted = [...layout].sort((a, b) => a.offset - b.offset);
  let end = 0;
  for (const e of sorted) {
    const elements = e.shape.reduce((a, b) => a * b, 1);
    if (e.offset % 4 !== 0) {
      throw new Error(`param layout: ${e.name} offset ${e.offset} is not a multiple of 4`);
    }
    if (elements !== e.size) {
      throw new Error(`param layout: ${e.name} size ${e.size} != shape product ${elements}`);
    }
    if (e.group !== groupOfRole(e.role)) {
      throw new Error(
        `param layout: ${e.name} role ${e.role} expects group ${groupOfRole(e.role)}, got ${e.group}`,
      );
    }
    if (e.offset < end) {
      throw new Error(`param layout: ${e.name} at ${e.offset} overlaps the previous tensor`);
    }
    end = e.offset + e.size;
  }
}

/** Floats in the flat buffers: past the last tensor, rounded up to a whole vec4. */
export function layoutLength(layout: readonly LayoutEntry[]): number {
  const end = layout.reduce((m, e) => Math.max(m, e.offset + e.size), 0);
  return Math.ceil(end / 4) * 4;
}

/** Tensors per group (frozen ones included: train.py keeps them in their groups) and trainable elements. */
export interface GroupSizes {
  tensors: [number, number, number];
  elements: [number, number, number];
  frozenTensors: number;
}

export function groupSizes(layout: readonly LayoutEntry[]): GroupSizes {
  const sizes: GroupSizes = { tensors: [0, 0, 0], elements: [0, 0, 0], frozenTensors: 0 };
  for (const e of layout) {
    sizes.tensors[e.group]++;
    if (e.frozen) sizes.frozenTensors++;
    else sizes.elements[e.group] += e.size;
  }
  return sizes;
}

/** The line train.py logs, e.g. "optimizer: SGD(lr=0.01) with parameter groups 0 weight(decay=0.0), ...". */
export function describeGroups(
  name: OptimizerName,
  lr: number,
  weightDecay: number,
  layout: readonly LayoutEntry[],
): string {
  const [bias, weight, norm] = groupSizes(layout).tensors;
  return `optimizer: ${name}(lr=${pyFloat(lr)}) with parameter groups ${norm} weight(decay=0.0), ` +
    `${weight} weight(decay=${pyFloat(weightDecay)}), ${bias} bias`;
}

/** Python's repr of a float: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export function pyFloat(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "nan" : x > 0 ? "inf" : "-inf";
  const abs = Math.abs(x);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    const [mantissa, exp] = x.toExponential().split("e");
    const e = Number(exp);
    return `${mantissa}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}

/** Tag value for vec4s the update kernels skip: frozen tensors and the gaps between tensors. */
export const SKIP_TAG = 3;

/**
 * The GPU's per-vec4 group table: 2 bits per vec4 (group 0..2, or SKIP_TAG), 16 vec4s per u32. At 64 floats per
 * word it costs the update kernels 0.2% extra traffic, and needs no search to find a vec4's tensor.
 */
export function groupTags(layout: readonly LayoutEntry[]): Uint32Array<ArrayBuffer> {
  const n4 = layoutLength(layout) / 4;
  const tags = new Uint32Array(Math.max(1, Math.ceil(n4 / 16))).fill(0xffffffff);
  for (const e of layout) {
    if (e.frozen) continue;
    for (let v = e.offset / 4; v < Math.ceil((e.offset + e.size) / 4); v++) {
      const shift = (v % 16) * 2;
      const word = v >> 4;
      tags[word] = ((tags[word] & ~(SKIP_TAG << shift)) | (e.group << shift)) >>> 0;
    }
  }
  return tags;
}
