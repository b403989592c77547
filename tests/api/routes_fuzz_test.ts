// Fuzzes the request bodies of the routes that take bytes from the network (detect, upload, activate,
// fine-tune): seeded mutations of valid multipart, JSON and raw bodies. Every answer must be a 2xx with the
// route's result or a 4xx in the `{"error": {"code", "message"}}` shape: never a 5xx, a hang or an uncaught
// error. REGRESSION_SEEDS keeps seeds that once failed; they run before the fresh ones.
import assert from "node:assert/strict";
import { zipSync } from "fflate";
import sharp from "sharp";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { concat, mutateBytes, mutateJson, pick } from "./_fuzz.ts";
import { mulberry32 } from "../_helpers/random.ts";
import { NC, openTestApp, type TestApp } from "./_app_setup.ts";

/** Longest any one request may take before it counts as a hang (a detect of a tiny model takes milliseconds). */
const REQUEST_TIMEOUT_MS = 10_000;
const enc = new TextEncoder();
const BOUNDARY = "kestrelfuzzboundary";

/** Seeds that once failed, per route family: `[family, seed]`. */
const REGRESSION_SEEDS: [string, number][] = [];

const png = async (w = 32, h = 24) =>
  new Uint8Array(
    await sharp({ create: { width: w, height: h, channels: 3, background: { r: 40, g: 90, b: 160 } } })
      .png().toBuffer(),
  );

/** A multipart/form-data body with `fields` (string values) and `files` ([field, file name, bytes]). */
function multipart(fields: Record<string, string>, files: [string, string, Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(
      enc.encode(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  }
  for (const [name, file, bytes] of files) {
    parts.push(
      enc.encode(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"; filename="${file}"\r\n` +
          "Content-Type: application/octet-stream\r\n\r\n",
      ),
      bytes,
      enc.encode("\r\n"),
    );
  }
  parts.push(enc.encode(`--${BOUNDARY}--\r\n`));
  return concat(...parts);
}

const MULTIPART_TYPES = [
  `multipart/form-data; boundary=${BOUNDARY}`,
  `multipart/form-data; boundary=${BOUNDARY}`,
  `multipart/form-data; boundary=${BOUNDARY}`,
  `multipart/form-data; boundary="${BOUNDARY}"`,
  "multipart/form-data",
  "multipart/form-data; boundary=",
  "multipart/form-data; boundary=other",
];

interface Case {
  path: string;
  type: string;
  body: Uint8Array<ArrayBuffer>;
}

/** A route family: the cases a seed makes, and what a 2xx answer must hold. */
interface Family {
  name: string;
  cases: number;
  make(rand: () => number): Case;
  valid(status: number, body: Record<string, unknown>): void;
}

async function families(): Promise<Family[]> {
  const image = await png();
  const detectJson = { image: image.toBase64() };
  const detectForm = multipart({}, [["image", "a.png", image]]);
  const model = tinyYolo({ nc: NC, seed: 11 });
  const dataset = zipSync({
    "images/a.png": image,
    "labels/a.txt": enc.encode("0 0.5 0.5 0.25 0.25\n"),
    "images/b.png": await png(40, 30),
    "labels/b.txt": enc.encode("1 0.4 0.6 0.2 0.3\n"),
  });
  const config = { epochs: 1, imgsz: 64, batch_size: 2, val_fraction: 0 };
  const finetuneForm = multipart({ config: JSON.stringify(config) }, [["dataset", "d.zip", dataset]]);
  const inline = {
    config,
    images: [{ name: "a.png", data: image.toBase64(), labels: [[0, 0.5, 0.5, 0.25, 0.25]] }],
  };
  const json = (rand: () => number, value: unknown): Uint8Array<ArrayBuffer> =>
    rand() < 0.5
      ? enc.encode(JSON.stringify(mutateJson(rand, value)))
      : mutateBytes(rand, enc.encode(JSON.stringify(value)));
  const detected = (status: number, body: Record<string, unknown>) => {
    assert.equal(status, 200);
    assert.ok(Array.isArray(body.detections), JSON.stringify(body));
  };
  return [
    {
      name: "detect",
      cases: 120,
      make: (rand) =>
        rand() < 0.5
          ? { path: "/v1/models/tiny/detect", type: "application/json", body: json(rand, detectJson) }
          : {
            path: "/v1/models/tiny/detect",
            type: pick(rand, MULTIPART_TYPES),
            body: mutateBytes(rand, detectForm),
          },
      valid: detected,
    },
    {
      name: "upload",
      cases: 30,
      make: (rand) => ({
        path: "/v1/models/fuzzed",
        type: pick(rand, ["application/octet-stream", "application/octet-stream", ""]),
        body: mutateBytes(rand, model),
      }),
      valid: (status, body) => {
        assert.equal(status, 201);
        assert.equal(typeof body.version, "number");
      },
    },
    {
      name: "activate",
      cases: 120,
      make: (rand) => ({
        path: "/v1/models/tiny/activate",
        type: "application/json",
        body: json(rand, { version: pick(rand, [1, 2]) }),
      }),
      valid: (status, body) => {
        assert.equal(status, 200);
        assert.equal(body.name, "tiny");
      },
    },
    {
      name: "finetune",
      cases: 100,
      make: (rand) =>
        rand() < 0.5
          ? { path: "/v1/models/tiny/finetune", type: "application/json", body: json(rand, inline) }
          : {
            path: "/v1/models/tiny/finetune",
            type: pick(rand, MULTIPART_TYPES),
            body: mutateBytes(rand, finetuneForm),
          },
      valid: (status, body) => {
        assert.equal(status, 202);
        assert.equal(typeof body.id, "string");
      },
    },
  ];
}

async function send(s: TestApp, c: Case): Promise<Response> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)),
      REQUEST_TIMEOUT_MS,
    );
  });
  try {
    const headers: Record<string, string> = c.type ? { "content-type": c.type } : {};
    return await Promise.race([s.call(c.path, { method: "POST", body: c.body, headers }), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `family` for one seed; returns a description of the failure, or null. */
async function runSeed(s: TestApp, family: Family, seed: number): Promise<string | null> {
  const rand = mulberry32(seed);
  for (let i = 0; i < family.cases; i++) {
    const c = family.make(rand);
    try {
      const res = await send(s, c);
      const text = await res.text();
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(text);
      } catch {
        throw new Error(`status ${res.status}, body is not JSON: ${text.slice(0, 200)}`);
      }
      assert.ok(res.status < 500, `status ${res.status}: ${text.slice(0, 300)}`);
      if (res.status >= 400) {
        const error = body.error as { code?: unknown; message?: unknown } | undefined;
        assert.equal(typeof error?.code, "string", text.slice(0, 300));
        assert.equal(typeof error?.message, "string", text.slice(0, 300));
      } else {
        family.valid(res.status, body);
      }
    } catch (err) {
      return `${family.name} seed ${seed} case ${i} (${c.type}, ${c.body.length} bytes): ${
        (err as Error).message
      }`;
    }
  }
  return null;
}

/** Five seeds: about a second per family here, ~600 bodies in all; failures found get added above. */
const FRESH_SEEDS = [1, 2, 3, 4, 5];

for (const name of ["detect", "upload", "activate", "finetune"]) {
  Deno.test({
    name:
      `fuzz: mutated ${name} bodies get a valid result or a 4xx in the error shape, never a 5xx or a hang`,
    sanitizeResources: false,
    fn: async () => {
      const s = await openTestApp();
      try {
        // A second version, so activate has something to swap to.
        await s.registry.add("tiny", tinyYolo({ nc: NC, seed: 3 }), {
          source: { type: "upload" },
          activate: false,
        });
        const family = (await families()).find((f) => f.name === name)!;
        const seeds = [
          ...REGRESSION_SEEDS.filter(([f]) => f === name).map(([, seed]) => seed),
          ...FRESH_SEEDS,
        ];
        const failures: string[] = [];
        for (const seed of seeds) {
          const failure = await runSeed(s, family, seed);
          if (failure) failures.push(failure);
        }
        assert.deepEqual(failures, []);
      } finally {
        await s.close();
      }
    },
  });
}
