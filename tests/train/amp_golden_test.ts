// Mixed precision on the public golden scenario (issue 18): `deno task finetune --amp true` of
// golden/finetune-sgd (yolov5n at 320, 4 images, 10 iterations) stays within the f16 bound of the same
// command's f32 run (`--amp false`), and every trace line carries GradScaler's scale. Skipped without the
// reference data; tests/train/amp_test.ts checks the same on an embedded model.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { referenceData } from "../_helpers/reference.ts";
import { run } from "../../src/cli/finetune.ts";
import { GRAD_SCALER_DEFAULTS } from "../../src/optim/grad_scaler.ts";
import type { TraceLine } from "../../src/optim/trace.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { GOLDEN, GOLDEN_FILES, goldenParams, relL2, YOLOV5N } from "./_golden.ts";
import { AMP_LOSS_RTOL, AMP_WEIGHT_DELTA_RTOL } from "./_amp_bounds.ts";

const REFERENCE = referenceData(import.meta.url, ...GOLDEN_FILES);

gpuTest(
  "deno task finetune --amp true on golden/finetune-sgd stays within the f16 bound of the f32 run",
  async () => {
    const out = await Deno.makeTempDir({ prefix: "kestrel-amp-golden-" });
    try {
      const finetune = async (amp: boolean) => {
        const dir = `${out}/${amp ? "amp" : "f32"}`;
        const args = ["--config", new URL("scenario.json", GOLDEN).pathname, "--out", dir, "--amp", `${amp}`];
        assert.equal(await run(args), 0, `finetune --amp ${amp} exit code`);
        const trace: TraceLine[] = (await Deno.readTextFile(`${dir}/trace.jsonl`)).trim().split("\n")
          .map((l) => JSON.parse(l));
        return { trace, last: OnnxModel.parse(await Deno.readFile(`${dir}/last.onnx`)) };
      };
      const f32 = await finetune(false), amp = await finetune(true);
      assert.equal(amp.trace.length, f32.trace.length);
      amp.trace.forEach((a, k) => {
        const f = f32.trace[k];
        assert.equal(
          a.loss_scale,
          GRAD_SCALER_DEFAULTS.initScale,
          `ni ${k}: no overflow at the initial scale`,
        );
        assert.equal(f.loss_scale, 1, `ni ${k}: amp off reports 1`);
        const rel = Math.abs(a.loss - f.loss) / f.loss;
        assert.ok(rel < AMP_LOSS_RTOL, `ni ${k}: loss ${a.loss} vs f32 ${f.loss} (rel ${rel})`);
      });
      const initial = OnnxModel.parse(await Deno.readFile(YOLOV5N));
      const got: number[] = [], want: number[] = [];
      for (const { name } of goldenParams()) {
        const w0 = initial.getInitializer(name).data;
        const wa = amp.last.getInitializer(name).data, wf = f32.last.getInitializer(name).data;
        for (let i = 0; i < w0.length; i++) {
          got.push(wa[i] - w0[i]);
          want.push(wf[i] - w0[i]);
        }
      }
      const err = relL2(got, want);
      assert.ok(err < AMP_WEIGHT_DELTA_RTOL, `weight change relative L2 ${err}`);
      assert.ok(err > 0, "the amp run computed in f16: its weights differ from the f32 run's");
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
  REFERENCE,
);
