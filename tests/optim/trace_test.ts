import assert from "node:assert/strict";
import { Schedule } from "../../src/optim/schedule.ts";
import { type TraceLine, traceLine, TraceWriter } from "../../src/optim/trace.ts";
import { SCRATCH_LOW } from "../_helpers/hyp.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";

/** The golden run trains with AMP off: torch's disabled GradScaler reports a scale of 1. */
const AMP_OFF_SCALE = 1;

const REFERENCE = referenceData(import.meta.url, "golden/finetune-sgd/");
const DIR = REFERENCE.url("golden/finetune-sgd/");

referenceTest(
  REFERENCE,
  "traceLine + TraceWriter rebuild finetune-sgd/trace.jsonl from the Schedule and the losses",
  async () => {
    const scenario = JSON.parse(await Deno.readTextFile(new URL("scenario.json", DIR)));
    const final = JSON.parse(await Deno.readTextFile(new URL("final.json", DIR)));
    const golden: TraceLine[] = (await Deno.readTextFile(new URL("trace.jsonl", DIR))).trim().split("\n")
      .map((l) => JSON.parse(l));
    const s = new Schedule({
      optimizer: scenario.optimizer,
      hyp: scenario.hyp,
      batchSize: scenario.batch_size,
      nb: final.nb,
      epochs: scenario.epochs,
      cosLr: scenario.cos_lr,
    });
    const path = await Deno.makeTempFile({ suffix: ".jsonl" });
    const writer = new TraceWriter(path);
    for (const g of golden) {
      if (g.i === 0 && g.epoch > 0) s.endEpoch(g.epoch - 1);
      writer.write(traceLine(s.iteration(g.epoch, g.i), g.loss, g.loss_items, g.grad_norm, AMP_OFF_SCALE));
    }
    writer.close();
    const written = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    await Deno.remove(path);
    // train.py's trace has no loss_scale column; Kestrel appends it after train.py's fields.
    assert.deepEqual(written, golden.map((g) => ({ ...g, loss_scale: AMP_OFF_SCALE })));
    assert.deepEqual(Object.keys(written[0]), [...Object.keys(golden[0]), "loss_scale"]);
  },
);

Deno.test("traceLine refuses a grad_norm that disagrees with stepped", () => {
  const plan = new Schedule({
    optimizer: "SGD",
    hyp: SCRATCH_LOW,
    batchSize: 16,
    nb: 10,
    epochs: 1,
    cosLr: false,
  }).iteration(0, 0);
  assert.equal(plan.stepped, true);
  assert.throws(
    () => traceLine(plan, 1, [0, 0, 0], null, AMP_OFF_SCALE),
    /stepped=true but grad_norm is null/,
  );
});
