import { parseArgs } from "node:util";
import { basename, extname } from "node:path";
import { z } from "zod";
import { DetectResultSchema } from "../api/schemas.ts";
import { BACKEND_CHOICES } from "../serving/backend.ts";
import { detect } from "../serving/detector.ts";
import { ModelPool } from "../serving/pool.ts";
import { DEFAULT_DETECT_OPTIONS } from "../serving/postprocess.ts";
import { selectBackend } from "../serving/select.ts";

const USAGE =
  "Usage: deno task detect --model PATH [--imgsz 640] [--conf 0.25] [--iou 0.45] [--max-det 300] " +
  "[--classes 0,2] [--backend auto|webgpu|wasm|native] IMAGE...";

const DetectArgs = z.object({
  model: z.string({ error: "--model PATH is required" }),
  imgsz: z.coerce.number().int().positive().optional(),
  conf: z.coerce.number().min(0).max(1).default(DEFAULT_DETECT_OPTIONS.conf),
  iou: z.coerce.number().min(0).max(1).default(DEFAULT_DETECT_OPTIONS.iou),
  "max-det": z.coerce.number().int().positive().default(DEFAULT_DETECT_OPTIONS.maxDet),
  classes: z.string().regex(/^\d+(,\d+)*$/, "a comma-separated list of class ids").optional(),
  backend: z.enum(BACKEND_CHOICES).default("auto"),
  images: z.array(z.string()).min(1, "at least one IMAGE is required"),
});

/** `deno task detect`: one JSON line per image, the same object POST /v1/models/{name}/detect returns. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: Object.fromEntries(
      ["model", "imgsz", "conf", "iou", "max-det", "classes", "backend"].map((k) => [k, { type: "string" }]),
    ),
  });
  const parsed = DetectArgs.safeParse({ ...values, images: positionals });
  if (!parsed.success) {
    console.error(`${z.prettifyError(parsed.error)}\n${USAGE}`);
    return 2;
  }
  const a = parsed.data;
  const { backend, reason } = await selectBackend(a.backend);
  console.error(`backend: ${backend.name} (${reason})`);
  const pool = new ModelPool(backend, a.imgsz);
  const name = basename(a.model, extname(a.model));
  try {
    await pool.swap(name, 1, await Deno.readFile(a.model));
    const model = pool.get(name)!;
    const opts = {
      conf: a.conf,
      iou: a.iou,
      maxDet: a["max-det"],
      classes: a.classes?.split(",").map(Number),
    };
    let failed = 0;
    for (const file of a.images) {
      try {
        const result = await detect(model, await Deno.readFile(file), opts);
        console.log(JSON.stringify(DetectResultSchema.parse({ file, ...result })));
      } catch (err) {
        failed++;
        console.error(`${file}: ${(err as Error).message}`);
      }
    }
    return failed ? 1 : 0;
  } finally {
    await pool.close();
  }
}
