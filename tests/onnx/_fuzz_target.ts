// Fuzz target (tests/_helpers/fuzz.ts): a mutated tiny YOLOv5 export through what the upload route runs,
// Registry.add as the server opens it (OnnxModel.parse, inspectYolo, then a session build and warm-up run on
// onnxruntime-node, then the store), on a MemoryStore. Odd seeds mutate the bytes (the
// protobuf framing); even seeds set decoded numeric fields (dims, data types, shapes, attribute values) to edge
// values and re-encode, which keeps the file well-formed and reaches the YOLO inspection behind the parser.
import * as ort from "../../src/serving/backends/ort_native.ts";
import { isEngineError } from "../_helpers/engine_error.ts";
import { mutate } from "../_helpers/fuzz.ts";
import { mulberry32 } from "../_helpers/random.ts";
import { openServingRegistry } from "../../src/api/registry_wiring.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { inspectYolo } from "../../src/onnx/yolo.ts";
import { RegistryError } from "../../src/registry/errors.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { tinyYolo } from "./_tiny_yolo.ts";

const VALID = tinyYolo({ seed: 1 });
// The graph header (ir_version, producer, opset) and the first nodes sit in the first bytes.
const HEADER_BYTES = 256;
// Refusals the upload route answers with a 4xx (versions.ts maps every RegistryError code to one).
const CLIENT_ERRORS = new Set(["invalid_model", "too_large", "invalid_name"]);
const pool = new ModelPool(nativeBackend);
const registry = await openServingRegistry(
  { dataDir: "unused", maxModelBytes: 1 << 20 },
  pool,
  new MemoryStore(),
);
// Refused models log onnxruntime's error server-side (and onnxruntime logs its own); thousands of them would
// bury the test output.
console.error = () => {};
ort.env.logLevel = "fatal";

// Values where sizes overflow, go negative or pass a bound (MAX_CLASSES + 1 = 4097).
const EDGE_VALUES = [0, -1, 1, 3, 4097, 2 ** 31 - 1, 2 ** 31, 2 ** 53 - 1, 1e9];

/** Every numeric field of the decoded model, as [object, key] pairs (array elements included). */
function numericFields(root: unknown): [Record<string, unknown>, string][] {
  const out: [Record<string, unknown>, string][] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== "object" || ArrayBuffer.isView(node)) continue;
    const record = node as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const value = record[key];
      const isLong = typeof value === "object" && value !== null && "toNumber" in value;
      if (typeof value === "number" || isLong) out.push([record, key]);
      else stack.push(value);
    }
  }
  return out;
}

function mutateFields(rand: () => number): Uint8Array {
  const model = OnnxModel.parse(VALID);
  const fields = numericFields(model.proto);
  for (let e = 0, n = 1 + Math.floor(rand() * 3); e < n; e++) {
    const [record, key] = fields[Math.floor(rand() * fields.length)];
    record[key] = EDGE_VALUES[Math.floor(rand() * EDGE_VALUES.length)];
  }
  return model.toBytes();
}

export async function fuzzCase(seed: number): Promise<string> {
  const rand = mulberry32(seed);
  const bytes = seed % 2 === 1 ? mutate(VALID, rand, HEADER_BYTES) : mutateFields(rand);
  try {
    inspectYolo(OnnxModel.parse(bytes));
  } catch (err) {
    // Registry.add turns any of these into invalid_model; an engine error there is still a parser bug.
    if (isEngineError(err)) throw err;
  }
  try {
    const meta = await registry.add("fuzz", bytes, { source: { type: "upload" } });
    await registry.remove("fuzz", meta.version);
    return "accepted";
  } catch (err) {
    if (err instanceof RegistryError && CLIENT_ERRORS.has(err.code)) return err.code;
    throw err;
  }
}
