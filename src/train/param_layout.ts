/**
 * The flat parameter layout shared by the training program, the optimizer, the EMA and ONNX write-back
 * (docs/training.md §1.1): every trainable float32 initializer in ONNX initializer order, each starting at a
 * multiple of 4 floats (zero padding between) so vec4 kernels work. Frozen parameters keep their place,
 * flagged, as in PyTorch where they stay in their optimizer groups without gradients. BatchNorm running
 * statistics (buffers, not trained) get a layout of their own with the same packing: their flat buffer is
 * averaged by the EMA and written back too.
 * @module
 */
import { type OnnxModel, tensorDims } from "../onnx/model.ts";
import type { ParamRole, TrainGraph } from "../onnx/graph.ts";

/** A tensor's place in a flat buffer. */
export interface FlatEntry {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

/** Tensors packed in initializer order, each at a multiple of 4 floats. */
export interface FlatLayout<E extends FlatEntry = FlatEntry> {
  entries: E[];
  byName: Map<string, E>;
  /** Floats in the flat buffers (a multiple of 4). */
  size: number;
}

export interface ParamEntry extends FlatEntry {
  role: ParamRole;
  /** 0 bias (no decay), 1 weight (decay), 2 norm weight (no decay): v7.0 smart_optimizer's group order. */
  group: 0 | 1 | 2;
  frozen: boolean;
}

export type ParamLayout = FlatLayout<ParamEntry>;

const ALIGN = 4;
const GROUP: Record<ParamRole, 0 | 1 | 2> = { bias: 0, weight: 1, norm_weight: 2 };
const LAYER_NAME = /^model\.\d+\./;

/**
 * train.py's `--freeze`: one number N freezes layers 0..N-1, a list freezes exactly those layers. A parameter is
 * frozen when its name contains `model.<k>.` for a frozen k; for models without such names, layer k is the k-th
 * parameter-owning node in graph order.
 */
export function frozenParams(graph: TrainGraph, freeze: number | number[]): Set<string> {
  const list = typeof freeze === "number" ? [freeze] : freeze;
  const layers = list.length > 1 ? list : Array.from({ length: list[0] ?? 0 }, (_, k) => k);
  if (layers.length === 0) return new Set();
  if (graph.params.some((p) => LAYER_NAME.test(p.name))) {
    const prefixes = layers.map((k) => `model.${k}.`);
    return new Set(graph.params.filter((p) => prefixes.some((x) => p.name.includes(x))).map((p) => p.name));
  }
  const owners = [...new Set(graph.params.map((p) => p.node))].sort((a, b) => a - b);
  const frozenNodes = new Set(layers.map((k) => owners[k]).filter((n) => n !== undefined));
  return new Set(graph.params.filter((p) => frozenNodes.has(p.node)).map((p) => p.name));
}

function packLayout<E extends FlatEntry>(
  model: OnnxModel,
  names: string[],
  entry: (flat: FlatEntry, k: number) => E,
): FlatLayout<E> {
  let offset = 0;
  const entries = names.map((name, k) => {
    const init = model.initializer(name);
    if (!init) throw new Error(`buildParamLayout: '${name}' is not an initializer`);
    const shape = tensorDims(init);
    const size = shape.reduce((a, b) => a * b, 1);
    const e = entry({ name, shape, offset, size }, k);
    offset += Math.ceil(size / ALIGN) * ALIGN;
    return e;
  });
  return { entries, byName: new Map(entries.map((e) => [e.name, e])), size: offset };
}

export function buildParamLayout(model: OnnxModel, graph: TrainGraph, frozen: Set<string>): ParamLayout {
  return packLayout(model, graph.params.map((p) => p.name), (e, k) => {
    const role = graph.params[k].role;
    return { ...e, role, group: GROUP[role], frozen: frozen.has(e.name) };
  });
}

/** The BatchNorm running means and variances (graph.buffers, initializer order). */
export function buildBufferLayout(model: OnnxModel, graph: TrainGraph): FlatLayout {
  return packLayout(model, graph.buffers, (e) => e);
}

/** The model's current values in layout order (padding zero): parameters or buffers. */
export function packParams(model: OnnxModel, layout: FlatLayout): Float32Array<ArrayBuffer> {
  const flat = new Float32Array(layout.size);
  for (const e of layout.entries) flat.set(model.getInitializer(e.name).data, e.offset);
  return flat;
}

/** Writes flat values (e.g. EMA weights or running stats read back from the GPU) into the model's initializers. */
export function writeBackParams(model: OnnxModel, layout: FlatLayout, flat: Float32Array): void {
  if (flat.length < layout.size) {
    throw new Error(`writeBackParams: got ${flat.length} floats, layout needs ${layout.size}`);
  }
  for (const e of layout.entries) model.setInitializer(e.name, flat.slice(e.offset, e.offset + e.size));
}
