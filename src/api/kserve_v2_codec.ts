/**
 * The wire format of the Open Inference Protocol (KServe v2) REST infer call: the JSON request and response
 * objects, row-major tensor `data` (flat or nested), and the binary tensor data extension, where the body is
 * `Inference-Header-Content-Length` bytes of JSON followed by each binary tensor's raw little-endian bytes
 * (their sizes in `parameters.binary_data_size`, in tensor order), which spares 1x3x640x640 FP32 inputs ~20 MB
 * of JSON text.
 */
import { z } from "@hono/zod-openapi";
import { ApiError } from "./errors.ts";

export const BINARY_HEADER = "Inference-Header-Content-Length";

const ParametersSchema = z.record(z.string(), z.unknown()).openapi("V2Parameters", {
  description: "Key/value parameters; accepted, and `binary_data_output` / `binary_data` are honoured",
});
/** Nested arrays of numbers, strings or booleans (`$tensor_data`). */
const TensorDataSchema = z.array(z.unknown()).openapi("V2TensorData", {
  description: "Row-major tensor contents, flat or nested as the shape",
});

export const InferRequestSchema = z.object({
  id: z.string().optional(),
  parameters: ParametersSchema.optional(),
  inputs: z.array(z.object({
    name: z.string(),
    shape: z.array(z.number().int().min(0)),
    datatype: z.string(),
    parameters: ParametersSchema.optional(),
    data: TensorDataSchema.optional().openapi({
      description: "Absent when the bytes follow the JSON (binary)",
    }),
  })),
  outputs: z.array(z.object({ name: z.string(), parameters: ParametersSchema.optional() })).optional(),
}).openapi("V2InferRequest");

export type InferRequest = z.infer<typeof InferRequestSchema>;
export type InferInput = InferRequest["inputs"][number];

export const InferResponseSchema = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: ParametersSchema.optional(),
  outputs: z.array(z.object({
    name: z.string(),
    shape: z.array(z.number().int()),
    datatype: z.string(),
    parameters: ParametersSchema.optional(),
    data: TensorDataSchema.optional().openapi({ description: "Absent for a binary output" }),
  })),
}).openapi("V2InferResponse");

const bad = (message: string) => new ApiError(400, "bad_request", message);

/** A parsed infer request and, for inputs sent as binary, their raw bytes by input name. */
export interface ParsedInfer {
  request: InferRequest;
  binary: Map<string, Uint8Array>;
}

/** Parses an infer body: plain JSON, or (with `headerLength`) the binary extension's JSON header and data. */
export function parseInferBody(body: Uint8Array, headerLength: string | undefined): ParsedInfer {
  let jsonEnd = body.length;
  if (headerLength !== undefined) {
    jsonEnd = Number(headerLength);
    if (!/^\d+$/.test(headerLength) || jsonEnd > body.length) {
      throw bad(`${BINARY_HEADER} '${headerLength}' is not a length within the ${body.length}-byte body`);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(body.subarray(0, jsonEnd)));
  } catch {
    throw bad(
      "The body is not JSON" + (headerLength === undefined ? ` (binary data needs ${BINARY_HEADER})` : ""),
    );
  }
  const parsed = InferRequestSchema.safeParse(json);
  if (!parsed.success) {
    throw bad(parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
  }
  const binary = new Map<string, Uint8Array>();
  let at = jsonEnd;
  for (const input of parsed.data.inputs) {
    const size = input.parameters?.binary_data_size;
    if (size === undefined) continue;
    if (!Number.isSafeInteger(size) || (size as number) < 0 || at + (size as number) > body.length) {
      throw bad(
        `Input '${input.name}': binary_data_size ${size} does not fit the ${body.length - at} bytes left`,
      );
    }
    binary.set(input.name, body.subarray(at, at + (size as number)));
    at += size as number;
  }
  if (at !== body.length) throw bad(`${body.length - at} bytes after the binary inputs belong to no input`);
  return { request: parsed.data, binary };
}

const elements = (shape: number[]) => shape.reduce((n, d) => n * d, 1);

/** An FP32 input's values, from JSON numbers or little-endian binary, checked against its shape. */
export function fp32Values(input: InferInput, binary: Uint8Array | undefined): Float32Array {
  const count = elements(input.shape);
  if (binary) {
    if (binary.length !== count * 4) {
      throw bad(
        `Input '${input.name}': ${binary.length} bytes of FP32 data for shape [${input.shape}], ` +
          `expected ${count * 4}`,
      );
    }
    const view = new DataView(binary.buffer, binary.byteOffset, binary.byteLength);
    return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true));
  }
  if (!input.data) throw bad(`Input '${input.name}' has neither data nor parameters.binary_data_size`);
  const values = input.data.flat(Infinity); // row-major, however deeply nested
  if (values.length !== count) {
    throw bad(`Input '${input.name}': ${values.length} values for shape [${input.shape}], expected ${count}`);
  }
  const out = new Float32Array(count);
  values.forEach((v, i) => {
    if (typeof v !== "number") throw bad(`Input '${input.name}': element ${i} is not a number`);
    out[i] = v;
  });
  return out;
}

/**
 * A BYTES input's elements: JSON strings (base64, as the payload of an encoded image must be in JSON), or
 * binary as the extension lays BYTES out, each element a 4-byte little-endian length and then its bytes. A
 * one-element input may also be the bare bytes, as OpenVINO Model Server accepts for a single image: its
 * first four bytes then do not give the rest's length (a JPEG, PNG or WebP signature never does).
 */
export function bytesValues(input: InferInput, binary: Uint8Array | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  const prefixed = (b: Uint8Array) =>
    b.length >= 4 && new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) === b.length - 4;
  if (binary && elements(input.shape) === 1 && !prefixed(binary)) {
    out.push(binary);
  } else if (binary) {
    const view = new DataView(binary.buffer, binary.byteOffset, binary.byteLength);
    for (let at = 0; at < binary.length;) {
      const size = at + 4 <= binary.length ? view.getUint32(at, true) : -1;
      if (size < 0 || at + 4 + size > binary.length) {
        throw bad(`Input '${input.name}': BYTES element ${out.length} overruns the binary data`);
      }
      out.push(binary.subarray(at + 4, at + 4 + size));
      at += 4 + size;
    }
  } else {
    if (!input.data) throw bad(`Input '${input.name}' has neither data nor parameters.binary_data_size`);
    for (const [i, v] of input.data.flat(Infinity).entries()) {
      if (typeof v !== "string") {
        throw bad(`Input '${input.name}': BYTES element ${i} is not a base64 string`);
      }
      try {
        out.push(Uint8Array.fromBase64(v.replace(/\s+/g, "")));
      } catch {
        throw bad(`Input '${input.name}': BYTES element ${i} is not valid base64`);
      }
    }
  }
  if (out.length !== elements(input.shape)) {
    throw bad(`Input '${input.name}': ${out.length} BYTES elements for shape [${input.shape}]`);
  }
  return out;
}

/** One output tensor to send back. */
export interface OutputTensor {
  name: string;
  shape: number[];
  data: Float32Array;
  binary: boolean;
}

/**
 * The response body: plain JSON when no output is binary; otherwise the JSON header, then each binary output's
 * float32 little-endian bytes, with the header's length for {@link BINARY_HEADER}.
 */
export function encodeInferResponse(
  head: Omit<z.infer<typeof InferResponseSchema>, "outputs">,
  outputs: OutputTensor[],
): { body: Uint8Array<ArrayBuffer>; headerLength: number | null } {
  const json = {
    ...head,
    outputs: outputs.map((o) => ({
      name: o.name,
      datatype: "FP32",
      shape: o.shape,
      ...(o.binary ? { parameters: { binary_data_size: o.data.length * 4 } } : { data: Array.from(o.data) }),
    })),
  };
  const header = new TextEncoder().encode(JSON.stringify(json));
  const binaries = outputs.filter((o) => o.binary);
  if (binaries.length === 0) return { body: header, headerLength: null };
  const body = new Uint8Array(header.length + binaries.reduce((n, o) => n + o.data.length * 4, 0));
  body.set(header);
  const view = new DataView(body.buffer);
  let at = header.length;
  for (const o of binaries) {
    for (let i = 0; i < o.data.length; i++, at += 4) view.setFloat32(at, o.data[i], true);
  }
  return { body, headerLength: header.length };
}
