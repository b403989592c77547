/**
 * The flat parameter layout shared by the training program, the optimizer, the EMA and ONNX write-back
 * (ENGINE.md): every trainable float32 initializer in ONNX initializer order, each starting at a multiple of 4
 * floats (zero padding between) so vec4 kernels work. Frozen parameters keep their place, flagged, as in PyTorch
 * where they stay in their optimizer groups without gradients.
 * @module
 */
import { type OnnxModel, tensorDims } from "../onnx/model.ts";
import type { ParamRole, TrainGraph } from "../onnx/graph.ts";

export interface ParamEntry {
  name: string;
  shape: number[];
  offset: number;
  size: number;
  role: ParamRole;
  /** 0 bias (no decay), 1 weight (decay), 2 norm weight (no decay): v7.0 smart_optimizer's group order. */
  group: 0 | 1 | 2;
  frozen: boolean;
}

export interface ParamLayout {
  entries: ParamEntry[];
  byName: Map<string, ParamEntry>;
  /** Floats in the flat buffers (a multiple of 4). */
  size: number;
}

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

export function buildParamLayout(model: OnnxModel, graph: TrainGraph, frozen: Set<string>): ParamLayout {
  let offset = 0;
  const entries = graph.params.map((p): ParamEntry => {
    const init = model.initializer(p.name);
    if (!init) throw new Error(`buildParamLayout: parameter '${p.name}' is not an initializer`);
    const shape = tensorDims(init);
    const size = shape.reduce((a, b) => a * b, 1);
    const entry = {
      name: p.name,
      shape,
      offset,
      size,
      role: p.role,
      group: GROUP[p.role],
      frozen: frozen.has(p.name),
    };
    offset += Math.ceil(size / ALIGN) * ALIGN;
    return entry;
  });
  return { entries, byName: new Map(entries.map((e) => [e.name, e])), size: offset };
}

/** The model's current parameter values in layout order (padding zero). */
export function packParams(model: OnnxModel, layout: ParamLayout): Float32Array<ArrayBuffer> {
  const flat = new Float32Array(layout.size);
  for (const e of layout.entries) flat.set(model.getInitializer(e.name).data, e.offset);
  return flat;
}

/** Writes flat parameter values (e.g. EMA weights read back from the GPU) into the model's initializers. */
export function writeBackParams(model: OnnxModel, layout: ParamLayout, flat: Float32Array): void {
  if (flat.length < layout.size) {
    throw new Error(`writeBackParams: got ${flat.length} floats, layout needs ${layout.size}`);
  }
  for (const e of layout.entries) model.setInitializer(e.name, flat.slice(e.offset, e.offset + e.size));
}
