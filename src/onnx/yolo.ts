/**
 * Recognise an ultralytics YOLOv5 ONNX export and recover what serving and training need from it: the image
 * input, the (1, N, 5+nc) output, class names, and per Detect layer its conv, stride and pixel anchors
 * (docs/training.md §9.2-9.3: anchors come from the Mul constant on the wh branch, strides from the Mul
 * constant on the xy branch).
 *
 * @example
 * ```ts
 * const info = inspectYolo(OnnxModel.parse(bytes));
 * info.layers.map((l) => l.stride); // [8, 16, 32]
 * ```
 * @module
 */
import {
  int64,
  type NodeProto,
  OnnxModel,
  tensorDims,
  type TensorProto,
  tensorToFloat32,
  valueShape,
} from "./model.ts";
import { parsePythonNames } from "./names.ts";

/** One Detect layer (P3, P4, ... in graph order). */
export interface YoloLayer {
  /** Input pixels per grid cell. */
  stride: number;
  /** Anchors in input pixels, [w, h] per anchor. */
  anchors: [number, number][];
  /** Name of the 1x1 head Conv node (its output name when the node is unnamed). */
  convNode: string;
  /** Initializer names of the head conv's weight [na*no, C, 1, 1] and bias [na*no]. */
  weight: string;
  bias: string | null;
  /** The Transpose output (B, na, ny, nx, no) before the Sigmoid: the raw logits a trainer's loss needs. */
  logits: string;
}

/** What {@link inspectYolo} finds. */
export interface YoloInfo {
  inputName: string;
  outputName: string;
  /** Fixed input size, or null for a dynamic axis (export --dynamic). */
  inputHeight: number | null;
  inputWidth: number | null;
  nc: number;
  /** Anchors per layer. */
  na: number;
  names: string[];
  /** metadata `stride` (the largest stride), else the largest layer stride. */
  stride: number;
  strides: number[];
  /** Pixel anchors per layer, flattened [w0, h0, w1, h1, ...] like ultralytics' yaml. */
  anchors: number[][];
  /** False when the graph constants could not be read and ultralytics' default anchors were used. */
  anchorsFromGraph: boolean;
  layers: YoloLayer[];
}

/** ultralytics' default anchors (models/yolov5{n..x}.yaml and the P6 variants), in pixels. */
const DEFAULT_ANCHORS: Record<number, number[][]> = {
  3: [
    [10, 13, 16, 30, 33, 23],
    [30, 61, 62, 45, 59, 119],
    [116, 90, 156, 198, 373, 326],
  ],
  4: [
    [19, 27, 44, 40, 38, 94],
    [96, 68, 86, 152, 180, 137],
    [140, 301, 303, 264, 238, 542],
    [436, 615, 739, 380, 925, 792],
  ],
};

/**
 * Bounds on what a model file may declare, checked before anything is sized from it: class names are
 * synthesized per class and the warm-up input and activations grow with the input side squared (COCO has 80
 * classes; YOLOv5's largest published input is 1280).
 */
export const MAX_CLASSES = 4096;
export const MAX_INPUT_SIDE = 4096;

const HEAD_WEIGHT = /^model\.(\d+)\.m\.(\d+)\.weight$/;
// Longest Mul/Pow/Add/Expand chain between the Split and an anchor or stride constant (3 in
// docs/training.md §9.2).
const MAX_BRANCH_STEPS = 4;

/**
 * Inspect a YOLOv5 detector. Throws an Error naming what is missing when the model has not exactly one image
 * input, its output is not (1, N, 5+nc), or no Detect head (1x1 convs feeding Reshape -> Transpose) is found.
 */
export function inspectYolo(model: OnnxModel): YoloInfo {
  const g = new GraphIndex(model);
  const inits = new Set(model.initializerNames());
  const inputs = model.graph.input.filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) {
    throw new Error(
      `Not a YOLO detector: expected one image input, found ${inputs.length} (${inputs.map((i) => i.name)})`,
    );
  }
  const inShape = valueShape(inputs[0]) ?? [];
  if (inShape.length !== 4 || (typeof inShape[1] === "number" && inShape[1] !== 3)) {
    throw new Error(
      `Not a YOLO detector: input '${inputs[0].name}' has shape [${inShape}], expected (1, 3, H, W)`,
    );
  }
  const output = model.graph.output[0];
  const outShape = output ? valueShape(output) ?? [] : [];
  const no = outShape[2];
  if (
    model.graph.output.length !== 1 || outShape.length !== 3 || typeof no !== "number" || no < 6 ||
    (typeof outShape[0] === "number" && outShape[0] !== 1)
  ) {
    throw new Error(
      `Not a YOLO detector: output ${output ? `'${output.name}' has shape [${outShape}]` : "missing"}` +
        `${
          model.graph.output.length > 1 ? ` (and ${model.graph.output.length} outputs)` : ""
        }, expected (1, N, 5+nc)`,
    );
  }
  const nc = no - 5;
  if (nc > MAX_CLASSES) {
    throw new Error(`Model output has nc = ${nc} classes; at most ${MAX_CLASSES} are supported`);
  }
  const inputHeight = typeof inShape[2] === "number" ? inShape[2] : null;
  const inputWidth = typeof inShape[3] === "number" ? inShape[3] : null;
  if (Math.max(inputHeight ?? 0, inputWidth ?? 0) > MAX_INPUT_SIDE) {
    throw new Error(
      `Model input is ${inputHeight}x${inputWidth}; at most ${MAX_INPUT_SIDE} pixels a side are supported`,
    );
  }

  const convs = findHeadConvs(model, g);
  if (convs.length === 0) {
    throw new Error("Not a YOLO detector: no Detect head (1x1 Conv -> Reshape -> Transpose) found");
  }
  const outChannels = tensorDims(model.initializer(convs[0].conv.input[1])!)[0];
  const na = outChannels / no;
  if (!Number.isInteger(na)) {
    throw new Error(
      `Not a YOLO detector: head conv has ${outChannels} outputs, not a multiple of 5+nc = ${no}`,
    );
  }
  const found = convs.map(({ logits }) => readBranches(g, logits, na));
  const anchorsFromGraph = found.every((f) => f.anchors !== null);
  const defaults = DEFAULT_ANCHORS[convs.length];
  if (!anchorsFromGraph && (!defaults || na !== 3)) {
    throw new Error(
      `Cannot find the anchor constants of the ${convs.length}-layer Detect head and no defaults fit`,
    );
  }
  const layers = convs.map(({ conv, logits }, i): YoloLayer => {
    const anchors = anchorsFromGraph ? found[i].anchors! : pairs(defaults[i]);
    const stride = found[i].stride ?? 8 * 2 ** i; // P3 = 8, doubling per layer as in every YOLOv5 yaml
    return {
      stride,
      anchors,
      convNode: conv.name || conv.output[0],
      weight: conv.input[1],
      bias: conv.input[2] ?? null,
      logits,
    };
  });

  const strides = layers.map((l) => l.stride);
  const metaStride = Number(model.metadata.get("stride"));
  const namesText = model.metadata.get("names");
  const names = namesText === undefined
    ? Array.from({ length: nc }, (_, i) => `class${i}`)
    : parsePythonNames(namesText);
  if (names.length !== nc) {
    throw new Error(`Model metadata 'names' lists ${names.length} classes but the output has nc = ${nc}`);
  }
  return {
    inputName: inputs[0].name,
    outputName: output.name,
    inputHeight,
    inputWidth,
    nc,
    na,
    names,
    stride: Number.isFinite(metaStride) && metaStride > 0 ? metaStride : Math.max(...strides),
    strides,
    anchors: layers.map((l) => l.anchors.flat()),
    anchorsFromGraph,
    layers,
  };
}

function pairs(flat: number[]): [number, number][] {
  return Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i], flat[2 * i + 1]]);
}

/**
 * Head convs in graph order: named `model.L.m.k.weight` (docs/training.md §9.3), else by the Reshape ->
 * Transpose pattern.
 */
function findHeadConvs(model: OnnxModel, g: GraphIndex): { conv: NodeProto; logits: string }[] {
  const convs = model.graph.node.filter((n) => n.opType === "Conv" && model.initializer(n.input[1]));
  const named = convs.filter((n) => HEAD_WEIGHT.test(n.input[1]));
  const candidates = named.length > 0 ? named : convs;
  const heads: { conv: NodeProto; logits: string }[] = [];
  for (const conv of candidates) {
    const dims = tensorDims(model.initializer(conv.input[1])!);
    if (dims.length !== 4 || dims[2] !== 1 || dims[3] !== 1) continue;
    const reshape = g.soleConsumer(conv.output[0], "Reshape");
    const transpose = reshape && g.soleConsumer(reshape.output[0], "Transpose");
    const perm = transpose?.attribute.find((a) => a.name === "perm")?.ints.map(int64);
    if (transpose && perm?.join() === "0,1,3,4,2") heads.push({ conv, logits: transpose.output[0] });
  }
  return heads;
}

/** Walk Sigmoid -> Split, then the xy branch to its stride Mul and the wh branch to its anchor Mul. */
function readBranches(g: GraphIndex, logits: string, na: number) {
  const none = { stride: null as number | null, anchors: null as [number, number][] | null };
  const sigmoid = g.soleConsumer(logits, "Sigmoid");
  const split = sigmoid && g.soleConsumer(sigmoid.output[0], "Split");
  if (!split || split.output.length < 3) return none;
  let stride: number | null = null;
  let afterAdd = false;
  for (const { node, other } of g.chain(split.output[0], MAX_BRANCH_STEPS)) {
    const tensor = node.opType === "Mul" ? g.constantTensor(other) : null;
    if (afterAdd && tensor && tensorDims(tensor).reduce((a, b) => a * b, 1) === 1) {
      stride = tensorToFloat32(tensor, `stride constant '${other}'`)[0];
    }
    afterAdd ||= node.opType === "Add";
  }
  let anchors: [number, number][] | null = null;
  for (const { node, other } of g.chain(split.output[1], MAX_BRANCH_STEPS)) {
    const tensor = node.opType === "Mul" ? g.constantTensor(other) : null;
    const dims = tensor ? tensorDims(tensor) : [];
    if (tensor && dims.length === 5 && dims[1] === na && dims[4] === 2) {
      // [1, na, ny, nx, 2] (or [1, na, 1, 1, 2] under --dynamic): anchor a is at [0, a, 0, 0, :].
      const data = tensorToFloat32(tensor, `anchor constant '${other}'`);
      const perAnchor = dims[2] * dims[3] * 2;
      anchors = Array.from({ length: na }, (_, a) => [data[a * perAnchor], data[a * perAnchor + 1]]);
    }
  }
  return { stride, anchors };
}

/** Producer/consumer lookups and constant resolution over one graph. */
class GraphIndex {
  private readonly consumers = new Map<string, NodeProto[]>();
  private readonly producers = new Map<string, NodeProto>();

  constructor(private readonly model: OnnxModel) {
    for (const node of model.graph.node) {
      for (const input of node.input) this.consumers.set(input, [...(this.consumers.get(input) ?? []), node]);
      for (const output of node.output) this.producers.set(output, node);
    }
  }

  soleConsumer(value: string, opType: string): NodeProto | null {
    const users = this.consumers.get(value) ?? [];
    return users.length === 1 && users[0].opType === opType ? users[0] : null;
  }

  /** Follow single consumers from `value` for at most `steps` nodes; `other` is a binary node's other operand. */
  *chain(value: string, steps: number): Generator<{ node: NodeProto; other: string }> {
    for (let i = 0; i < steps; i++) {
      const users = this.consumers.get(value) ?? [];
      if (users.length !== 1) return;
      const node = users[0];
      yield { node, other: node.input[0] === value ? node.input[1] ?? "" : node.input[0] };
      value = node.output[0];
    }
  }

  /** An initializer, a Constant node's value, or the constant fed through an Expand (export --dynamic). */
  constantTensor(value: string): TensorProto | null {
    const init = this.model.initializer(value);
    if (init) return init;
    const producer = this.producers.get(value);
    if (producer?.opType === "Constant") return producer.attribute.find((a) => a.name === "value")?.t ?? null;
    if (producer?.opType === "Expand") return this.constantTensor(producer.input[0]);
    return null;
  }
}
