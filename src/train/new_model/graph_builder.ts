/**
 * Builds an ONNX GraphProto node by node with the naming torch.onnx (>= 1.13) gives module-path scopes:
 * node `/model.2/m/m.0/cv1/conv/Conv`, its output `/model.2/m/m.0/cv1/conv/Conv_output_0`, a second node of the
 * same op type in one scope `/model.24/Mul_1`. Matching the export's names keeps a fresh model indistinguishable
 * in form from an ultralytics export for everything downstream (graph import, head detection, debugging).
 * @module
 */
import * as onnxProtoModule from "onnx-proto";

// onnx-proto is CommonJS; Deno exposes `module.exports` as the default export (see src/onnx/model.ts).
export const { onnx } = (onnxProtoModule as unknown as { default: typeof onnxProtoModule }).default;

type NodeProto = onnxProtoModule.onnx.NodeProto;
type TensorProto = onnxProtoModule.onnx.TensorProto;
type AttributeProto = onnxProtoModule.onnx.AttributeProto;

/** Attribute values as torch.onnx writes them: ints lists, single ints, floats, strings, tensors. */
export type AttrValue = number[] | { int: number } | { float: number } | string | TensorProto;

const { AttributeType } = onnx.AttributeProto;
const { DataType } = onnx.TensorProto;

function attribute(name: string, value: AttrValue): AttributeProto {
  if (Array.isArray(value)) {
    return onnx.AttributeProto.create({ name, type: AttributeType.INTS, ints: value });
  }
  if (typeof value === "string") {
    return onnx.AttributeProto.create({
      name,
      type: AttributeType.STRING,
      s: new TextEncoder().encode(value),
    });
  }
  if ("int" in value) return onnx.AttributeProto.create({ name, type: AttributeType.INT, i: value.int });
  if ("float" in value) {
    return onnx.AttributeProto.create({ name, type: AttributeType.FLOAT, f: value.float });
  }
  return onnx.AttributeProto.create({ name, type: AttributeType.TENSOR, t: value });
}

/** A float32 tensor (raw_data, little-endian like the export). `dims` [] is a scalar. */
export function floatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new RangeError(`tensor '${name}': ${data.length} values for dims [${dims}]`);
  }
  const raw = new Uint8Array(data.byteLength);
  const view = new DataView(raw.buffer);
  data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return onnx.TensorProto.create({ name, dims, dataType: DataType.FLOAT, rawData: raw });
}

/** A 1-D int64 tensor (Reshape shapes). */
export function int64Tensor(name: string, values: number[]): TensorProto {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return onnx.TensorProto.create({ name, dims: [values.length], dataType: DataType.INT64, rawData: raw });
}

/** Collects nodes and initializers in the order they are added. */
export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly used = new Map<string, number>();

  /**
   * Append a node `${scope}/${opType}` (suffixed `_k` for the k-th repeat in that scope) and return its output
   * names. `outputs` overrides the generated names (the graph output `output0`).
   */
  node(
    scope: string,
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    outputs: number | string[] = 1,
  ): string[] {
    const base = `${scope}/${opType}`;
    const k = this.used.get(base) ?? 0;
    this.used.set(base, k + 1);
    const name = k === 0 ? base : `${base}_${k}`;
    const outs = typeof outputs === "number"
      ? Array.from({ length: outputs }, (_, i) => `${name}_output_${i}`)
      : outputs;
    const attributes = Object.entries(attrs).map(([key, value]) => attribute(key, value));
    this.nodes.push(
      onnx.NodeProto.create({ name, opType, input: inputs, output: outs, attribute: attributes }),
    );
    return outs;
  }

  /** One output of {@link node}. */
  op(scope: string, opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(scope, opType, inputs, attrs)[0];
  }

  /** A Constant node holding `value` (torch.onnx folds Detect's grids, strides and shapes into these). */
  constant(scope: string, value: TensorProto): string {
    return this.op(scope, "Constant", [], { value });
  }

  /** Register a float32 initializer; returns its name. */
  initializer(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push(floatTensor(name, dims, data));
    return name;
  }
}
