import assert from "node:assert/strict";
import type { TrainProgram } from "../../src/train/program.ts";

/** Every SiLU of `p` runs inside its conv (src/train/program_fusion.ts): no activation pass is left, and each
 * SiLU's backward is one fused pass. */
export function assertSilusFused(p: TrainProgram): void {
  const labels = p.stepDispatches.map((d) => d.pipeline.label);
  const silus = p.graph.nodes.filter((n) => n.op === "silu").length;
  assert.ok(silus > 0, "the model has no SiLU");
  assert.deepEqual(labels.filter((l) => l.startsWith("ops/activation.wgsl:")), [], "SiLU passes left");
  assert.equal(labels.filter((l) => l.startsWith("ops/silu_bias_grad.wgsl:")).length, silus);
}
