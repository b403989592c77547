/**
 * ONNX ModelProto read/write with the `onnx-proto` package (protobufjs code generated from onnx.proto v1.10.2,
 * which covers every field torch.onnx / ultralytics exports write). Weights are read and replaced in place, so a
 * model written back keeps its graph, opsets, metadata and doc strings.
 *
 * @example
 * ```ts
 * const model = OnnxModel.parse(await Deno.readFile("yolov5n.onnx"));
 * const w = model.getInitializer("model.24.m.0.bias");
 * model.setInitializer("model.24.m.0.bias", w.data.map((v) => v * 2));
 * await Deno.writeFile("out.onnx", model.toBytes());
 * ```
 * @module
 */
import * as onnxProtoModule from "onnx-proto";

// onnx-proto is CommonJS assigning `module.exports = root`; Deno exposes that object as the default export and
// cannot see the `onnx` namespace as a named export.
const { onnx } = (onnxProtoModule as unknown as { default: typeof onnxProtoModule }).default;

type Scalar = string | number | boolean | Uint8Array | { toNumber(): number };
type Field<V> = [V] extends [Scalar] ? V : [V] extends [unknown[]] ? Decoded<V> : Decoded<V> | null;
/**
 * A message as protobufjs decodes it: scalars, strings and repeated fields always present (defaults), nested
 * messages null when absent. The generated typings mark everything optional, which is true only for input.
 */
export type Decoded<T> = T extends Scalar ? T
  : T extends (infer U)[] ? Decoded<U>[]
  : { -readonly [K in keyof T]-?: Field<NonNullable<T[K]>> };

/** The decoded protobuf messages (field names in camelCase: `opType`, `rawData`, `dimParam`, ...). */
export type ModelProto = Decoded<onnxProtoModule.onnx.IModelProto>;
export type GraphProto = Decoded<onnxProtoModule.onnx.IGraphProto>;
export type NodeProto = Decoded<onnxProtoModule.onnx.INodeProto>;
export type TensorProto = Decoded<onnxProtoModule.onnx.ITensorProto>;
export type ValueInfoProto = Decoded<onnxProtoModule.onnx.IValueInfoProto>;
export type AttributeProto = Decoded<onnxProtoModule.onnx.IAttributeProto>;

/** A float32 tensor copied out of the model. */
export interface FloatTensor {
  dims: number[];
  data: Float32Array;
}

/** One dimension of a graph input/output: a size, a symbolic name (`dim_param`, a dynamic axis) or unknown. */
export type Dim = number | string | null;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;

// Float32Array views of raw_data reinterpret bytes in host order, and ONNX raw_data is little-endian.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Float32Array([1]).buffer)[3] === 0x3f;

/** int64 fields decode as numbers or Long objects (protobufjs uses Long when available). */
export function int64(value: number | { toNumber(): number } | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === "number" ? value : value.toNumber();
}

/** Copy a float32 TensorProto (raw_data or float_data) into a Float32Array. `what` names it in errors. */
export function tensorToFloat32(tensor: TensorProto, what = `tensor '${tensor.name}'`): Float32Array {
  if (tensor.dataType !== FLOAT) {
    throw new TypeError(`${what} has ONNX data type ${tensor.dataType}, expected FLOAT (${FLOAT})`);
  }
  if (tensor.dataLocation === EXTERNAL || tensor.externalData.length > 0) {
    throw new Error(`${what} stores its data externally; only self-contained ONNX files are supported`);
  }
  const count = tensorDims(tensor).reduce((a, b) => a * b, 1);
  if (tensor.rawData && tensor.rawData.length > 0) {
    if (tensor.rawData.length !== count * 4) {
      throw new RangeError(`${what} has ${tensor.rawData.length} bytes of raw_data, expected ${count * 4}`);
    }
    if (!HOST_IS_LITTLE_ENDIAN) throw new Error("Reading ONNX raw_data needs a little-endian host");
    // rawData may be a Node Buffer whose slice() is a view into a larger pool, so copy via the constructor.
    return new Float32Array(new Uint8Array(tensor.rawData).buffer);
  }
  if (tensor.floatData.length !== count) {
    throw new RangeError(`${what} has ${tensor.floatData.length} float_data values, expected ${count}`);
  }
  return Float32Array.from(tensor.floatData);
}

/** The dims of a TensorProto as plain numbers. */
export function tensorDims(tensor: TensorProto): number[] {
  return tensor.dims.map(int64);
}

/** The shape of a graph input/output: numbers for fixed axes, the dim_param name for dynamic ones. */
export function valueShape(info: ValueInfoProto): Dim[] | null {
  const shape = info.type?.tensorType?.shape;
  if (!shape) return null;
  return shape.dim.map((d) =>
    d.dimParam
      ? d.dimParam
      : d.dimValue !== null && d.dimValue !== undefined && int64(d.dimValue) > 0
      ? int64(d.dimValue)
      : null
  );
}

type SparseTensorProto = Decoded<onnxProtoModule.onnx.ISparseTensorProto>;

function isExternal(tensor: TensorProto | null): boolean {
  return tensor !== null && (tensor.dataLocation === EXTERNAL || tensor.externalData.length > 0);
}

/**
 * Where, if anywhere, a tensor keeps its data in an external file: initializers, sparse initializers, node
 * attributes (`t`, `tensors`, sparse ones) and the subgraphs of If/Loop/Scan (`g`, `graphs`), in the main graph,
 * in model-local functions and in training graphs. onnxruntime would open such a file relative to its working
 * directory while building a session, so one anywhere lets an upload read server files. Walks with an explicit
 * stack: a hostile file may nest subgraphs as deep as protobufjs decodes.
 */
export function findExternalTensor(proto: ModelProto): string | null {
  const graphs: { graph: GraphProto; where: string }[] = [];
  const nodes: { node: NodeProto; where: string }[] = [];
  const pushGraph = (graph: GraphProto | null, where: string) => graph && graphs.push({ graph, where });
  pushGraph(proto.graph, "graph");
  for (const info of proto.trainingInfo) {
    pushGraph(info.initialization, "training initialization graph");
    pushGraph(info.algorithm, "training algorithm graph");
  }
  for (const fn of proto.functions) {
    for (const node of fn.node) nodes.push({ node, where: `function '${fn.name}'` });
  }
  const sparseExternal = (s: SparseTensorProto | null) =>
    s !== null && (isExternal(s.values) || isExternal(s.indices));
  while (graphs.length > 0 || nodes.length > 0) {
    const next = graphs.pop();
    if (next) {
      const { graph, where } = next;
      const init = graph.initializer.find(isExternal);
      if (init) return `initializer '${init.name}' (${where})`;
      const sparse = graph.sparseInitializer.find(sparseExternal);
      if (sparse) return `sparse initializer '${sparse.values?.name ?? ""}' (${where})`;
      for (const node of graph.node) nodes.push({ node, where });
      continue;
    }
    const { node, where } = nodes.pop()!;
    for (const a of node.attribute) {
      const at = `attribute '${a.name}' of node '${node.name || node.output[0] || node.opType}' (${where})`;
      if (isExternal(a.t) || a.tensors.some(isExternal)) return `tensor in ${at}`;
      if (sparseExternal(a.sparseTensor) || a.sparseTensors.some(sparseExternal)) {
        return `sparse tensor in ${at}`;
      }
      pushGraph(a.g, `subgraph of ${at}`);
      for (const g of a.graphs) pushGraph(g, `subgraph of ${at}`);
    }
  }
  return null;
}

/** An ONNX model: the decoded ModelProto plus float32 initializer access. */
export class OnnxModel {
  private readonly initializers = new Map<string, TensorProto>();

  private constructor(readonly proto: ModelProto) {
    for (const init of this.graph.initializer) this.initializers.set(init.name, init);
  }

  /**
   * Decode ONNX bytes. Throws when the bytes are not a ModelProto with a graph, or when any tensor anywhere in
   * the model keeps its data in an external file (see {@link findExternalTensor}).
   */
  static parse(bytes: Uint8Array): OnnxModel {
    let proto: ModelProto;
    try {
      proto = onnx.ModelProto.decode(bytes) as unknown as ModelProto;
    } catch (err) {
      throw new Error(`Cannot parse ONNX model (${bytes.length} bytes): ${(err as Error).message}`);
    }
    if (!proto.graph || proto.graph.node.length === 0) {
      throw new Error(`Cannot parse ONNX model (${bytes.length} bytes): it has no graph nodes`);
    }
    const external = findExternalTensor(proto);
    if (external !== null) {
      throw new Error(
        `ONNX ${external} stores its data externally; only self-contained ONNX files are supported`,
      );
    }
    return new OnnxModel(proto);
  }

  /** Encode the model, including any replaced initializers and metadata. */
  toBytes(): Uint8Array<ArrayBuffer> {
    const out = onnx.ModelProto.encode(this.proto as onnxProtoModule.onnx.IModelProto).finish();
    return new Uint8Array(out.buffer as ArrayBuffer, out.byteOffset, out.byteLength);
  }

  /** The decoded GraphProto: `node` (opType, input, output, attribute), `input`/`output`, `initializer`. */
  get graph(): GraphProto {
    return this.proto.graph as GraphProto;
  }

  /** metadata_props as a map (a snapshot; change it with {@link setMetadata}). */
  get metadata(): ReadonlyMap<string, string> {
    return new Map(this.proto.metadataProps.map((p) => [p.key, p.value]));
  }

  /** Set or add one metadata_props entry. */
  setMetadata(key: string, value: string): void {
    const entry = this.proto.metadataProps.find((p) => p.key === key);
    if (entry) entry.value = value;
    else this.proto.metadataProps.push(onnx.StringStringEntryProto.create({ key, value }));
  }

  /** Initializer names in graph order (the order a trainer's flat parameter buffer follows). */
  initializerNames(): string[] {
    return this.graph.initializer.map((t) => t.name);
  }

  /** The initializer TensorProto, or undefined. */
  initializer(name: string): TensorProto | undefined {
    return this.initializers.get(name);
  }

  /** A copy of a float32 initializer. Throws for unknown names and non-float tensors. */
  getInitializer(name: string): FloatTensor {
    const tensor = this.requireInitializer(name);
    const what = `initializer '${name}'`;
    return { dims: tensorDims(tensor), data: tensorToFloat32(tensor, what) };
  }

  /** Replace a float32 initializer's values, keeping its dims and storage form (raw_data or float_data). */
  setInitializer(name: string, data: Float32Array): void {
    const tensor = this.requireInitializer(name);
    const dims = tensorDims(tensor);
    const count = dims.reduce((a, b) => a * b, 1);
    if (tensor.dataType !== FLOAT) {
      throw new TypeError(
        `initializer '${name}' has ONNX data type ${tensor.dataType}, expected FLOAT (${FLOAT})`,
      );
    }
    if (data.length !== count) {
      throw new RangeError(
        `setInitializer('${name}'): got ${data.length} values, dims [${dims}] need ${count}`,
      );
    }
    if (tensor.floatData.length > 0) {
      tensor.floatData = Array.from(data);
    } else {
      if (!HOST_IS_LITTLE_ENDIAN) throw new Error("Writing ONNX raw_data needs a little-endian host");
      tensor.rawData = new Uint8Array(data.slice().buffer);
    }
  }

  private requireInitializer(name: string): TensorProto {
    const tensor = this.initializers.get(name);
    if (!tensor) throw new RangeError(`ONNX model has no initializer '${name}'`);
    return tensor;
  }
}
