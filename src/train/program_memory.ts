/**
 * Where every tensor of a training program lives, decided once per (batch, imgsz): Concat inputs are written
 * straight into channel slices of the Concat's buffer and channel Slices are views of their source, so neither
 * costs a copy; every other tensor gets its own buffer. Gradients mirror that placement for the tensors that need
 * one, and the backward order decides which gradient writes overwrite and which accumulate.
 * @module
 */
import type { GpuMemory } from "../gpu/memory.ts";
import type { IrNode, TrainGraph } from "../onnx/graph.ts";
import type { TensorView } from "../ops/types.ts";

/** A tensor's storage: its root tensor (which owns a buffer) and where in the root it sits. */
interface Slot {
  root: string;
  /** float offset of batch item 0 within the root's batch item */
  channelOffset: number;
}

export interface Memory {
  values: Map<string, TensorView>;
  grads: Map<string, TensorView>;
  /** Gradient buffers zeroed at the start of a step: their first backward write covers only part of them. */
  clearEachStep: GPUBuffer[];
  /** Concat inputs that live in their own buffer and are copied into the Concat's (see placeSlots). */
  copies: Set<string>;
  /** accumulate flag per (node index, input name): false = the write initialises the gradient. */
  accumulate: Map<string, boolean>;
  /** Bytes allocated for values and gradients. */
  bytes: number;
}

export const accKey = (node: number, input: string) => `${node}:${input}`;

/** Tensors whose gradient is needed: downstream of a trainable parameter, so something below them learns;
 * everything else is a function of the image alone. */
export function gradientTensors(g: TrainGraph, trainable: Set<string>): Set<string> {
  const needs = new Set<string>();
  const owned = new Map<number, boolean>();
  for (const p of g.params) owned.set(p.node, (owned.get(p.node) ?? false) || trainable.has(p.name));
  g.nodes.forEach((n, i) => {
    if (owned.get(i) || dataInputs(n).some((x) => needs.has(x))) needs.add(n.y);
  });
  return needs;
}

/**
 * The channels of a Concat's gradient that anything reads, where that is not all of them: the span of its inputs
 * that need a gradient (its other inputs come from frozen layers). Whatever writes the Concat's gradient (its
 * consumers' backward-data) need only write these; the rest is read by no one.
 */
export function readGradientChannels(
  g: TrainGraph,
  shapes: Map<string, number[]>,
  needsGrad: Set<string>,
): Map<string, { start: number; count: number }> {
  const read = new Map<string, { start: number; count: number }>();
  for (const n of g.nodes) {
    if (n.op !== "concat" || !needsGrad.has(n.y)) continue;
    const starts = [0];
    for (const x of n.xs) starts.push(starts.at(-1)! + shapes.get(x)![1]);
    const needed = n.xs.map((x, k) => needsGrad.has(x) ? k : -1).filter((k) => k >= 0);
    if (needed.length === 0 || needed.length === n.xs.length) continue;
    const start = starts[needed[0]], end = starts[needed.at(-1)! + 1];
    if (end - start < starts.at(-1)!) read.set(n.y, { start, count: end - start });
  }
  return read;
}

/** Inputs of a node whose gradient flows back through it (parameters excluded). */
export function dataInputs(n: IrNode): string[] {
  switch (n.op) {
    case "concat":
      return n.xs;
    case "mul":
    case "add":
      return [n.a, n.b];
    default:
      return [n.x];
  }
}

/**
 * Channel placement of every tensor. A producer may not write into the buffer it reads (WebGPU forbids a buffer
 * bound both read-only and read-write in one dispatch, e.g. SPPF's chained pools all living in one Concat), so
 * such outputs keep their own buffer and are copied into the Concat (`copies`).
 */
function placeSlots(g: TrainGraph, shapes: Map<string, number[]>) {
  const hw = (t: string) => shapes.get(t)![2] * shapes.get(t)![3];
  const parent = new Map<string, { concat: string; channelOffset: number }>();
  const sliceOf = new Map<string, { x: string; start: number }>();
  for (const n of g.nodes) {
    if (n.op === "slice") sliceOf.set(n.y, { x: n.x, start: n.start });
    if (n.op !== "concat") continue;
    let c = 0;
    for (const x of n.xs) {
      if (parent.has(x) || x === g.input || sliceOf.has(x) || n.xs.indexOf(x) !== n.xs.lastIndexOf(x)) {
        throw new Error(`program: '${x}' cannot be placed inside Concat ${n.name} (it needs a copy)`);
      }
      parent.set(x, { concat: n.y, channelOffset: c * hw(x) });
      c += shapes.get(x)![1];
    }
  }
  const copies = new Set<string>();
  for (;;) {
    const slots = new Map<string, Slot>();
    const resolve = (t: string): Slot => {
      let s = slots.get(t);
      if (s) return s;
      const p = parent.get(t), sl = sliceOf.get(t);
      if (p) {
        const outer = resolve(p.concat);
        s = { root: outer.root, channelOffset: outer.channelOffset + p.channelOffset };
      } else if (sl) {
        const src = resolve(sl.x);
        s = { root: src.root, channelOffset: src.channelOffset + sl.start * hw(t) };
      } else {
        s = { root: t, channelOffset: 0 };
      }
      slots.set(t, s);
      return s;
    };
    for (const t of shapes.keys()) resolve(t);
    const clash = g.nodes.find((n) =>
      n.op !== "concat" && n.op !== "slice" &&
      dataInputs(n).some((x) => slots.get(x)!.root === slots.get(n.y)!.root)
    );
    if (!clash) return { slots, copies };
    if (!parent.has(clash.y)) throw new Error(`program: ${clash.name} would read and write one buffer`);
    parent.delete(clash.y);
    copies.add(clash.y);
  }
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Allocates values for every tensor and gradients for `needsGrad` tensors. `backwardOrder` lists node indices in
 * the order their backward runs; `initialised` are gradients fully written before backward (the loss's heads).
 */
export function planMemory(
  memory: GpuMemory,
  g: TrainGraph,
  shapes: Map<string, number[]>,
  needsGrad: Set<string>,
  backwardOrder: number[],
  initialised: string[],
): Memory {
  const { slots, copies } = placeSlots(g, shapes);
  const limit = memory.device.limits.maxStorageBufferBindingSize;
  let bytes = 0;
  const view = (roots: Map<string, GPUBuffer>, t: string, what: string): TensorView => {
    const s = slots.get(t)!;
    let buffer = roots.get(s.root);
    if (!buffer) {
      const need = size(shapes.get(s.root)!) * 4;
      if (need > limit) {
        throw new Error(
          `program: ${what} '${s.root}' [${shapes.get(s.root)}] needs ${need} bytes, over this adapter's ` +
            `${limit}-byte storage binding limit: use a smaller batch or imgsz`,
        );
      }
      bytes += need;
      buffer = memory.storage(need, `${what} ${s.root}`);
      roots.set(s.root, buffer);
    }
    const rootShape = shapes.get(s.root)!;
    return { buffer, offset: s.channelOffset, shape: shapes.get(t)!, batchStride: size(rootShape.slice(1)) };
  };
  const valueRoots = new Map<string, GPUBuffer>(), gradRoots = new Map<string, GPUBuffer>();
  const values = new Map([...shapes.keys()].map((t) => [t, view(valueRoots, t, "value")]));
  const grads = new Map([...needsGrad].map((t) => [t, view(gradRoots, t, "grad")]));

  const written = new Set(initialised.map((t) => slots.get(t)!.root));
  const cleared = new Set<string>();
  const accumulate = new Map<string, boolean>();
  for (const i of backwardOrder) {
    // Slice and in-place Concat gradients are views: their backward writes nothing; copied inputs get a copy.
    const n = g.nodes[i];
    if (n.op === "slice") continue;
    const targets = n.op === "concat" ? n.xs.filter((x) => copies.has(x)) : dataInputs(n);
    for (const x of new Set(targets)) {
      if (!needsGrad.has(x)) continue;
      const s = slots.get(x)!;
      const whole = s.root === x;
      if (!written.has(s.root) && !whole) cleared.add(s.root);
      accumulate.set(accKey(i, x), written.has(s.root) || !whole);
      written.add(s.root);
    }
  }
  return {
    values,
    grads,
    clearEachStep: [...cleared].map((r) => gradRoots.get(r)!),
    copies,
    accumulate,
    bytes,
  };
}
