/**
 * Which Conv -> SiLU pairs a training program plans as one conv with the SiLU fused (planConv's `silu`): the
 * conv's forward GEMM writes silu of its output as well, and its backward turns the SiLU output's gradient into
 * its own in the pass that sums the bias gradient. Every YOLOv5 Conv block is such a pair (a Conv+BN fused
 * export: conv with bias, then SiLU), so this removes one elementwise pass per block in each direction.
 * @module
 */
import type { TrainGraph } from "../onnx/graph.ts";
import { accKey, dataInputs, type Memory } from "./program_memory.ts";

/**
 * Conv node index -> index of the SiLU fused into it. A pair fuses where the SiLU is the conv's only consumer (its
 * output then is the SiLU's alone, and its gradient comes from the SiLU alone, overwritten), the conv has a bias
 * whose gradient is computed wherever the conv's output gradient is (the fused backward hosts the SiLU's there),
 * and the SiLU's output lives in another buffer than the conv's input (one dispatch cannot read and write a
 * buffer).
 */
export function convSiluPairs(
  g: TrainGraph,
  place: Memory,
  needsGrad: Set<string>,
  trainable: Set<string>,
): Map<number, number> {
  const consumers = new Map<string, number[]>();
  g.nodes.forEach((n, i) => {
    for (const x of dataInputs(n)) consumers.set(x, [...(consumers.get(x) ?? []), i]);
  });
  const pairs = new Map<number, number>();
  g.nodes.forEach((conv, i) => {
    if (conv.op !== "conv" || !conv.bias || g.heads.includes(conv.y)) return;
    const users = consumers.get(conv.y) ?? [];
    if (users.length !== 1) return;
    const j = users[0];
    const silu = g.nodes[j];
    if (silu.op !== "silu") return;
    if (place.values.get(conv.x)!.buffer === place.values.get(silu.y)!.buffer) return;
    if (needsGrad.has(conv.y) && (!trainable.has(conv.bias) || place.accumulate.get(accKey(j, conv.y)))) {
      return;
    }
    pairs.set(i, j);
  });
  return pairs;
}
