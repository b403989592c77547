import assert from "node:assert/strict";
import { OnnxModel } from "../../src/onnx/model.ts";
import { readModelSpec } from "../../src/serving/model_spec.ts";

const YOLOV5N = await Deno.readFile(new URL("../../../shared/models/yolov5n.onnx", import.meta.url));

/** yolov5n with its input's H and W replaced (a string makes the axis dynamic, as export.py --dynamic does). */
function withInputSize(h: number | string, w: number | string): Uint8Array {
  const model = OnnxModel.parse(YOLOV5N);
  const dims = model.graph.input[0].type!.tensorType!.shape!.dim;
  for (const [i, v] of [[2, h], [3, w]] as const) {
    dims[i] = typeof v === "number" ? { dimValue: v } as typeof dims[0] : { dimParam: v } as typeof dims[0];
  }
  return model.toBytes();
}

Deno.test("readModelSpec() reads names, classes, stride and the fixed input size of an export", () => {
  const spec = readModelSpec(YOLOV5N, "yolov5n.onnx");
  assert.deepEqual(
    [spec.inputName, spec.outputName, spec.imgsz, spec.nc, spec.stride],
    ["images", "output0", 640, 80, 32],
  );
  assert.deepEqual([spec.names[0], spec.names[79]], ["person", "toothbrush"]);
  assert.throws(() => readModelSpec(YOLOV5N, "yolov5n.onnx", 320), /fixed at 640x640.*--imgsz 320/);
});

Deno.test("readModelSpec() takes --imgsz (default 640) for dynamic axes and checks the stride", () => {
  const dynamic = withInputSize("height", "width");
  assert.equal(readModelSpec(dynamic, "dyn").imgsz, 640);
  assert.equal(readModelSpec(dynamic, "dyn", 320).imgsz, 320);
  assert.throws(() => readModelSpec(dynamic, "dyn", 100), /100 is not a multiple of the model stride 32/);
});

Deno.test("readModelSpec() refuses non-square inputs and non-YOLO graphs with a clear error", () => {
  assert.throws(() => readModelSpec(withInputSize(640, 480), "wide"), /640x480; only square inputs/);
  assert.throws(() => readModelSpec(new Uint8Array([8, 1, 2, 3]), "junk"));
});
