/**
 * `deno task new-model --nc N [--names a,b,c] [--depth 0.33] [--width 0.25] [--imgsz 640] [--seed S] [--unfused]
 * --out x.onnx`: writes a fresh YOLOv5 (yolov5n multiples by default) as an export-form ONNX model to train from
 * scratch; `--unfused` keeps BatchNormalization nodes (trained with batch statistics) instead of fusing them.
 */
import { parseArgs } from "node:util";
import { newModelBytes } from "../train/new_model.ts";

const USAGE =
  "Usage: new-model --nc N [--names a,b,c] [--depth 0.33] [--width 0.25] [--imgsz 640] [--seed 0] [--unfused] --out x.onnx";

function number(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) {
    throw new TypeError(`--${flag} expects a number, got '${value}'`);
  }
  return n;
}

export async function run(args: string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args,
      options: {
        nc: { type: "string" },
        names: { type: "string" },
        depth: { type: "string" },
        width: { type: "string" },
        imgsz: { type: "string" },
        seed: { type: "string" },
        out: { type: "string" },
        unfused: { type: "boolean" },
      },
      strict: true,
    });
    if (values.nc === undefined || values.out === undefined) {
      throw new TypeError("--nc and --out are required");
    }
    const opts = {
      nc: number("nc", values.nc, 0),
      names: values.names?.split(","),
      depth: number("depth", values.depth, 0.33),
      width: number("width", values.width, 0.25),
      imgsz: number("imgsz", values.imgsz, 640),
      seed: number("seed", values.seed, 0),
      unfused: values.unfused ?? false,
    };
    const bytes = newModelBytes(opts);
    await Deno.writeFile(values.out, bytes);
    console.log(
      `Wrote ${values.out} (${bytes.length} bytes): YOLOv5 depth ${opts.depth} width ${opts.width}, ` +
        `nc ${opts.nc}, imgsz ${opts.imgsz}, seed ${opts.seed}${opts.unfused ? ", unfused BatchNorm" : ""}`,
    );
    return 0;
  } catch (err) {
    console.error(`new-model: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    return 2;
  }
}
