import assert from "node:assert/strict";
import { OnnxModel } from "../../src/onnx/model.ts";
import { readModelSpec } from "../../src/serving/model_spec.ts";

/** The embedded default model: 3 shape classes, 128x128 input (models/README.md). */
const DEFAULT = await Deno.readFile(new URL("../../models/default.onnx", import.meta.url));

/** The default model with its input's H and W replaced (a string makes the axis dynamic, as export.py --dynamic does). */
function withInputSize(h: number | string, w: number | string): Uint8Array {
  const model = OnnxModel.parse(DEFAULT);
  const dims = model.graph.input[0].type!.tensorType!.shape!.dim;
  for (const [i, v] of [[2, h], [3, w]] as const) {
    dims[i] = typeof v === "number" ? { dimValue: v } as typeof dims[0] : { dimParam: v } as typeof dims[0];
  }
  return model.toBytes();
}

Deno.test("readModelSpec() reads names, classes, stride and the fixed input size of an export", () => {
  const spec = readModelSpec(DEFAULT, "default.onnx");
  assert.deepEqual(
    [spec.inputName, spec.outputName, spec.imgsz, spec.nc, spec.stride],
    ["images", "output0", 128, 3, 32],
  );
  assert.deepEqual(spec.names, ["circle", "square", "triangle"]);
  assert.throws(() => readModelSpec(DEFAULT, "default.onnx", 320), /fixed at 128x128.*--imgsz 320/);
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
