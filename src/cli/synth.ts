/**
 * `deno task synth --out DIR [--n 200] [--imgsz 256] [--seed 1]`: writes the synthetic shapes dataset
 * (src/train/synth.ts) in YOLO layout.
 */
import { parseArgs } from "node:util";
import { writeSynthDataset } from "../train/synth.ts";

export async function run(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        out: { type: "string" },
        n: { type: "string", default: "200" },
        imgsz: { type: "string", default: "256" },
        seed: { type: "string", default: "1" },
      },
    }));
  } catch (err) {
    console.error(`synth: ${(err as Error).message}`);
    return 2;
  }
  const [n, imgsz, seed] = [values.n, values.imgsz, values.seed].map(Number);
  if (
    !values.out || !Number.isInteger(n) || n < 1 || !Number.isInteger(imgsz) || imgsz < 32 ||
    !Number.isInteger(seed)
  ) {
    console.error(
      "Usage: deno task synth --out DIR [--n 200 (>= 1)] [--imgsz 256 (>= 32)] [--seed 1 (integer)]",
    );
    return 2;
  }
  const names = await writeSynthDataset(values.out, { n, imgsz, seed });
  console.log(`Wrote ${names.length} images (${imgsz}x${imgsz}, seed ${seed}) to ${values.out}`);
  return 0;
}
