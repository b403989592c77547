// Small hand-made ONNX models for tests, encoded with the same protobuf code the product uses.
import * as onnxProtoModule from "onnx-proto";

const { onnx } = (onnxProtoModule as unknown as { default: typeof onnxProtoModule }).default;
export { onnx };
type ITensor = onnxProtoModule.onnx.ITensorProto;
type INode = onnxProtoModule.onnx.INodeProto;

const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** A value_info with fixed (number) or dynamic (string) dims. */
export function valueInfo(name: string, dims: (number | string)[]): onnxProtoModule.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }) },
      },
    },
  };
}

/** A float tensor stored as raw_data (the torch exporter's form) or float_data. */
export function floatTensor(
  name: string,
  dims: number[],
  values: number[],
  form: "raw" | "float" = "raw",
): ITensor {
  const data = new Float32Array(values);
  return form === "raw"
    ? { name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) }
    : { name, dims, dataType: FLOAT, floatData: Array.from(data) };
}

export function node(opType: string, input: string[], output: string[], name = output[0]): INode {
  return { opType, input, output, name };
}

/** Encode a one-graph model (opset 12, ir 7 like the ultralytics export). */
export function encodeModel(parts: {
  nodes: INode[];
  inputs: onnxProtoModule.onnx.IValueInfoProto[];
  outputs: onnxProtoModule.onnx.IValueInfoProto[];
  initializers?: ITensor[];
  metadata?: Record<string, string>;
}): Uint8Array<ArrayBuffer> {
  const proto = onnx.ModelProto.create({
    irVersion: 7,
    producerName: "kestrel-tests",
    opsetImport: [{ domain: "", version: 12 }],
    metadataProps: Object.entries(parts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: "test",
      node: parts.nodes,
      input: parts.inputs,
      output: parts.outputs,
      initializer: parts.initializers ?? [],
    },
  });
  return new Uint8Array(onnx.ModelProto.encode(proto).finish()); // a plain Uint8Array, not a Node Buffer
}

/** x + b with b an initializer of the given form: the smallest model onnxruntime will run. */
export function addModel(form: "raw" | "float", bias = [1, 2, 3, 4]): Uint8Array<ArrayBuffer> {
  return encodeModel({
    nodes: [node("Add", ["x", "b"], ["y"])],
    inputs: [valueInfo("x", [1, 4])],
    outputs: [valueInfo("y", [1, 4])],
    initializers: [floatTensor("b", [1, 4], bias, form)],
    metadata: { note: "hand-made" },
  });
}
