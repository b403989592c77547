import { OnnxModel } from "../onnx/model.ts";
import { inspectYolo, MAX_INPUT_SIDE } from "../onnx/yolo.ts";

/** What serving needs to know about a YOLOv5 export to feed it and read its output. */
export interface ModelSpec {
  inputName: string;
  outputName: string;
  /** Square input side the image is letterboxed to. */
  imgsz: number;
  nc: number;
  names: string[];
  stride: number;
}

/** Input side used for a model exported with dynamic axes, as detect.py's default --imgsz. */
export const DEFAULT_IMGSZ = 640;

/**
 * Reads the input/output names, input size, classes and stride of a YOLOv5 ONNX export. A static input fixes
 * the size (a different `imgsz` is an error); a dynamic one takes `imgsz`, which must be a stride multiple.
 */
export function readModelSpec(onnx: Uint8Array, what: string, imgsz?: number): ModelSpec {
  const info = inspectYolo(OnnxModel.parse(onnx));
  const fixed = info.inputHeight ?? info.inputWidth;
  if (info.inputHeight !== null && info.inputWidth !== null && info.inputHeight !== info.inputWidth) {
    throw new Error(
      `${what}: input is ${info.inputHeight}x${info.inputWidth}; only square inputs are served`,
    );
  }
  if (fixed !== null && imgsz !== undefined && imgsz !== fixed) {
    throw new Error(`${what}: input is fixed at ${fixed}x${fixed}, cannot run it at --imgsz ${imgsz}`);
  }
  const size = fixed ?? imgsz ?? DEFAULT_IMGSZ;
  if (size > MAX_INPUT_SIDE) {
    throw new Error(`${what}: image size ${size} is over the limit of ${MAX_INPUT_SIDE}`);
  }
  if (size % info.stride !== 0) {
    throw new Error(`${what}: image size ${size} is not a multiple of the model stride ${info.stride}`);
  }
  return {
    inputName: info.inputName,
    outputName: info.outputName,
    imgsz: size,
    nc: info.nc,
    names: info.names,
    stride: info.stride,
  };
}
