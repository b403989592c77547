/**
 * Sizing for streaming kernels whose invocations each walk a run of `chunk` consecutive vec4s
 * (wgsl/util/sum_squares.wgsl, the optimizer and EMA kernels). CPU adapters stream fastest with long runs
 * (lavapipe, 10M floats: ~3x faster than a grid-stride loop); GPUs coalesce best with one vec4 per invocation.
 * @module
 */
import { MAX_WORKGROUPS_PER_DIMENSION } from "./device.ts";

/** The run length that suits the adapter. */
export function streamChunk(isFallback: boolean): number {
  return isFallback ? 256 : 1;
}

/** Workgroups covering n4 vec4s, with the run length grown where one dimension of workgroups would not do. */
export function streamPlan(
  n4: number,
  workgroupSize: number,
  chunk: number,
): { chunk: number; workgroups: number } {
  let c = Math.max(1, chunk);
  while (Math.ceil(n4 / (workgroupSize * c)) > MAX_WORKGROUPS_PER_DIMENSION) c *= 2;
  return { chunk: c, workgroups: Math.max(1, Math.ceil(n4 / (workgroupSize * c))) };
}
