/**
 * ONNX YOLOv5 export -> trainable IR (docs/training.md §9.3): the backbone and neck nodes that compute the
 * Detect head convs' outputs, in graph order, with SiLU (Sigmoid + Mul) fused and Split turned into channel
 * slices. The decode after the head convs is cut away (serving keeps it); the head conv outputs (bs, na*no,
 * ny, nx) are the loss inputs. Parameter roles come from which input slot of which node uses an initializer,
 * not from names. Shapes for a given (batch, imgsz) come from graph_shapes.ts.
 * @module
 */
import { type AttributeProto, int64, type NodeProto, type OnnxModel, tensorToFloat32 } from "./model.ts";
import { inspectYolo, type YoloInfo } from "./yolo.ts";

export { inferShapes } from "./graph_shapes.ts";

interface Base {
  /** ONNX node name (or its first output), for labels and errors. */
  name: string;
  y: string;
}
export type IrNode =
  | Base & {
    op: "conv";
    x: string;
    weight: string;
    bias: string | null;
    stride: number;
    pad: number;
    dilation: number;
    groups: number;
  }
  | Base & { op: "silu" | "sigmoid" | "relu"; x: string }
  | Base & { op: "leakyrelu"; x: string; alpha: number }
  | Base & { op: "mul" | "add"; a: string; b: string }
  | Base & { op: "concat"; xs: string[] }
  | Base & { op: "slice"; x: string; start: number; end: number }
  | Base & { op: "maxpool"; x: string; kernel: number; stride: number; pad: number }
  | Base & { op: "resize2x"; x: string }
  | Base & {
    op: "batchnorm";
    x: string;
    scale: string;
    bias: string;
    mean: string;
    variance: string;
    eps: number;
    momentum: number;
  };

export type ParamRole = "weight" | "bias" | "norm_weight";

/** A trainable initializer and the node index (in `nodes`) that uses it. */
export interface ParamUse {
  name: string;
  role: ParamRole;
  node: number;
}

export interface TrainGraph {
  /** The image input (N, 3, H, W). */
  input: string;
  nodes: IrNode[];
  /** Head conv output tensors, P3 first: the raw logits in conv layout (bs, na*no, ny, nx). */
  heads: string[];
  yolo: YoloInfo;
  /** Trainable parameters in ONNX initializer order. */
  params: ParamUse[];
  /** BatchNormalization running mean / var initializers (buffers, updated in train mode, not trained). */
  buffers: string[];
}

/** ONNX BatchNormalization momentum m keeps m of the old running stat; PyTorch's 0.03 keeps 0.97 of it. */
const ONNX_BN_DEFAULT_MOMENTUM = 0.9;

function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}
function ints(node: NodeProto, name: string): number[] | undefined {
  return attr(node, name)?.ints.map(int64);
}
function text(node: NodeProto, name: string): string | undefined {
  const s = attr(node, name)?.s;
  return s ? new TextDecoder().decode(s) : undefined;
}
function label(node: NodeProto): string {
  return node.name || node.output[0];
}

/** Symmetric padding from ONNX pads [t, l, b, r]; YOLOv5 convs and pools always pad evenly. */
function symmetricPad(node: NodeProto): number {
  const pads = ints(node, "pads") ?? [0, 0, 0, 0];
  if (pads.some((p) => p !== pads[0])) throw new Error(`${label(node)}: pads [${pads}] are not symmetric`);
  if (text(node, "auto_pad") && text(node, "auto_pad") !== "NOTSET") {
    throw new Error(
      `${label(node)}: auto_pad ${text(node, "auto_pad")} is not supported, expected explicit pads`,
    );
  }
  return pads[0];
}

function square(node: NodeProto, name: string, fallback: number): number {
  const v = ints(node, name) ?? [fallback, fallback];
  if (v.some((x) => x !== v[0])) throw new Error(`${label(node)}: ${name} [${v}] is not square`);
  return v[0];
}

/** Builds the training IR of a YOLOv5 export. Throws naming the node for anything it cannot train. */
export function buildTrainGraph(model: OnnxModel): TrainGraph {
  const yolo = inspectYolo(model);
  const producers = new Map<string, NodeProto>();
  const consumers = new Map<string, NodeProto[]>();
  for (const n of model.graph.node) {
    for (const o of n.output) producers.set(o, n);
    for (const i of n.input) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  }
  const isInit = (v: string) => model.initializer(v) !== undefined;
  const headConvs = yolo.layers.map((l) => {
    const conv = model.graph.node.find((n) => n.opType === "Conv" && n.input[1] === l.weight);
    if (!conv) throw new Error(`buildTrainGraph: no Conv uses head weight '${l.weight}'`);
    return conv;
  });
  const heads = headConvs.map((c) => c.output[0]);

  const needed = headDependencies(headConvs, producers);
  const constant = (v: string): Float32Array | null => {
    if (isInit(v)) return model.getInitializer(v).data;
    const p = producers.get(v);
    const t = p?.opType === "Constant" ? attr(p, "value")?.t : null;
    return t ? tensorToFloat32(t, `constant '${v}'`) : null;
  };

  const nodes: IrNode[] = [];
  const fused = new Set<NodeProto>();
  for (const n of model.graph.node) {
    if (needed.has(n) && !fused.has(n)) nodes.push(...irNodes(n, { needed, fused, consumers, constant }));
  }
  const { params, buffers } = paramUses(model, nodes);
  const inputs = model.graph.input.filter((i) => !isInit(i.name));
  return { input: inputs[0].name, nodes, heads, yolo, params, buffers };
}

/** Everything the head convs depend on; the decode after them is not part of training. */
function headDependencies(headConvs: NodeProto[], producers: Map<string, NodeProto>): Set<NodeProto> {
  const needed = new Set<NodeProto>();
  const stack = [...headConvs];
  while (stack.length) {
    const n = stack.pop()!;
    if (needed.has(n)) continue;
    needed.add(n);
    for (const i of n.input) {
      const p = producers.get(i);
      if (p && p.opType !== "Constant") stack.push(p);
    }
  }
  return needed;
}

/** What irNodes reads of the graph around a node; `fused` collects the Muls folded into a SiLU. */
interface NodeContext {
  needed: Set<NodeProto>;
  fused: Set<NodeProto>;
  consumers: Map<string, NodeProto[]>;
  constant(v: string): Float32Array | null;
}

/** The IR node(s) one ONNX node becomes (a Sigmoid whose only user multiplies it by its input: one SiLU). */
function irNodes(n: NodeProto, g: NodeContext): IrNode[] {
  const { needed, fused, consumers, constant } = g;
  const name = label(n), y = n.output[0];
  switch (n.opType) {
    case "Conv": {
      return [{
        op: "conv",
        name,
        y,
        x: n.input[0],
        weight: n.input[1],
        bias: n.input[2] || null,
        stride: square(n, "strides", 1),
        pad: symmetricPad(n),
        dilation: square(n, "dilations", 1),
        groups: int64(attr(n, "group")?.i ?? 1) || 1,
      }];
    }
    case "Sigmoid": {
      const users = consumers.get(y) ?? [];
      const mul = users.length === 1 && users[0].opType === "Mul" ? users[0] : null;
      if (mul && mul.input.includes(n.input[0]) && needed.has(mul)) {
        fused.add(mul);
        return [{ op: "silu", name: label(mul), y: mul.output[0], x: n.input[0] }];
      }
      return [{ op: "sigmoid", name, y, x: n.input[0] }];
    }
    case "Mul":
    case "Add": {
      if (n.input.some((i) => constant(i) !== null)) {
        throw new Error(`buildTrainGraph: ${name} (${n.opType}) with a constant operand is not supported`);
      }
      return [{ op: n.opType === "Mul" ? "mul" : "add", name, y, a: n.input[0], b: n.input[1] }];
    }
    case "Concat": {
      const axis = int64(attr(n, "axis")?.i ?? 0);
      if (axis !== 1) throw new Error(`buildTrainGraph: ${name} concatenates axis ${axis}, expected 1`);
      return [{ op: "concat", name, y, xs: [...n.input] }];
    }
    case "Split":
      return splitToSlices(n, constant);
    case "Slice":
      return [channelSlice(n, constant)];
    case "MaxPool": {
      if (int64(attr(n, "ceil_mode")?.i ?? 0) !== 0) {
        throw new Error(`buildTrainGraph: ${name} uses ceil_mode`);
      }
      const kernel = square(n, "kernel_shape", 1);
      return [{
        op: "maxpool",
        name,
        y,
        x: n.input[0],
        kernel,
        stride: square(n, "strides", 1),
        pad: symmetricPad(n),
      }];
    }
    case "Resize":
    case "Upsample": {
      const mode = text(n, "mode") ?? "nearest";
      // Upsample and opset-10 Resize take (X, scales); opset 11+ Resize takes (X, roi, scales, sizes).
      const scales = constant(n.input.length === 2 ? n.input[1] : n.input[2] ?? "");
      if (mode !== "nearest" || !scales || [...scales].join() !== "1,1,2,2") {
        throw new Error(`buildTrainGraph: ${name} is ${mode} with scales [${scales}], expected nearest x2`);
      }
      return [{ op: "resize2x", name, y, x: n.input[0] }];
    }
    case "BatchNormalization": {
      const momentum = attr(n, "momentum")?.f ?? ONNX_BN_DEFAULT_MOMENTUM;
      return [{
        op: "batchnorm",
        name,
        y,
        x: n.input[0],
        scale: n.input[1],
        bias: n.input[2],
        mean: n.input[3],
        variance: n.input[4],
        eps: attr(n, "epsilon")?.f ?? 1e-5,
        // ONNX keeps `momentum` of the old statistic; PyTorch's momentum is the weight of the new batch.
        momentum: Math.fround(1 - momentum),
      }];
    }
    case "Relu":
      return [{ op: "relu", name, y, x: n.input[0] }];
    case "LeakyRelu":
      return [{ op: "leakyrelu", name, y, x: n.input[0], alpha: attr(n, "alpha")?.f ?? 0.01 }];
    default:
      throw new Error(`buildTrainGraph: ${name} is a ${n.opType}, which training does not support`);
  }
}

function splitToSlices(n: NodeProto, constant: (v: string) => Float32Array | null): IrNode[] {
  const axis = int64(attr(n, "axis")?.i ?? 0);
  if (axis !== 1) throw new Error(`buildTrainGraph: ${label(n)} splits axis ${axis}, expected 1`);
  const sizes = ints(n, "split") ?? (n.input[1] ? [...(constant(n.input[1]) ?? [])] : null);
  if (!sizes) throw new Error(`buildTrainGraph: ${label(n)} has no split sizes (equal splits need shapes)`);
  let start = 0;
  return n.output.map((y, k) => {
    const slice: IrNode = {
      op: "slice",
      name: `${label(n)}:${k}`,
      y,
      x: n.input[0],
      start,
      end: start + sizes[k],
    };
    start += sizes[k];
    return slice;
  });
}

function channelSlice(n: NodeProto, constant: (v: string) => Float32Array | null): IrNode {
  const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) => (n.input[i] ? constant(n.input[i]) : null));
  if (!starts || !ends || axes?.length !== 1 || axes[0] !== 1 || (steps && steps[0] !== 1)) {
    throw new Error(`buildTrainGraph: ${label(n)} is not a unit-step channel Slice with constant bounds`);
  }
  return { op: "slice", name: label(n), y: n.output[0], x: n.input[0], start: starts[0], end: ends[0] };
}

/** Roles by input slot: Conv 1 weight, Conv 2 bias, BatchNormalization 1 norm weight, 2 bias, 3-4 buffers. */
function paramUses(model: OnnxModel, nodes: IrNode[]): { params: ParamUse[]; buffers: string[] } {
  const byName = new Map<string, ParamUse>();
  const buffers = new Set<string>();
  const use = (name: string, role: ParamRole, node: number) => {
    const prev = byName.get(name);
    if (prev && prev.role !== role) {
      throw new Error(`buildTrainGraph: initializer '${name}' is used both as ${prev.role} and ${role}`);
    }
    byName.set(name, { name, role, node });
  };
  nodes.forEach((n, i) => {
    if (n.op === "conv") {
      use(n.weight, "weight", i);
      if (n.bias) use(n.bias, "bias", i);
    } else if (n.op === "batchnorm") {
      use(n.scale, "norm_weight", i);
      use(n.bias, "bias", i);
      buffers.add(n.mean);
      buffers.add(n.variance);
    }
  });
  const order = model.initializerNames();
  return {
    params: order.filter((n) => byName.has(n)).map((n) => byName.get(n)!),
    buffers: order.filter((n) => buffers.has(n)),
  };
}
