/**
 * Shapes of every tensor of a training IR for a given batch and input size: the export's own shapes hard-code
 * batch 1 and its export size, so they are recomputed from the node attributes and weight dims.
 * @module
 */
import { type OnnxModel, tensorDims } from "./model.ts";
import type { TrainGraph } from "./graph.ts";

/** Shape of every IR tensor for an input of (batch, 3, h, w). */
export function inferShapes(model: OnnxModel, g: TrainGraph, batch: number, h: number, w: number) {
  const shapes = new Map<string, number[]>([[g.input, [batch, 3, h, w]]]);
  const get = (v: string) => {
    const s = shapes.get(v);
    if (!s) throw new Error(`inferShapes: tensor '${v}' is used before it is computed`);
    return s;
  };
  for (const n of g.nodes) {
    switch (n.op) {
      case "conv": {
        const [b, , hi, wi] = get(n.x);
        const [co, , kh, kw] = tensorDims(model.initializer(n.weight)!);
        const out = (i: number, k: number) =>
          Math.floor((i + 2 * n.pad - n.dilation * (k - 1) - 1) / n.stride) + 1;
        shapes.set(n.y, [b, co, out(hi, kh), out(wi, kw)]);
        break;
      }
      case "maxpool": {
        const [b, c, hi, wi] = get(n.x);
        const out = (i: number) => Math.floor((i + 2 * n.pad - n.kernel) / n.stride) + 1;
        shapes.set(n.y, [b, c, out(hi), out(wi)]);
        break;
      }
      case "resize2x": {
        const [b, c, hi, wi] = get(n.x);
        shapes.set(n.y, [b, c, 2 * hi, 2 * wi]);
        break;
      }
      case "concat": {
        const parts = n.xs.map(get);
        shapes.set(n.y, [parts[0][0], parts.reduce((s, p) => s + p[1], 0), parts[0][2], parts[0][3]]);
        break;
      }
      case "slice": {
        const [b, c, hi, wi] = get(n.x);
        shapes.set(n.y, [b, Math.min(n.end, c) - n.start, hi, wi]);
        break;
      }
      case "mul":
      case "add": {
        const [a, b] = [get(n.a), get(n.b)];
        if (a.join() !== b.join()) throw new Error(`inferShapes: ${n.name} broadcasts [${a}] with [${b}]`);
        shapes.set(n.y, a);
        break;
      }
      default:
        shapes.set(n.y, get(n.x));
    }
  }
  return shapes;
}
