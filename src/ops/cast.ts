/**
 * A copy of a flat f32 buffer in another operand type (wgsl/ops/cast.wgsl): amp keeps f32 master weights and
 * gives the convs' GEMMs an f16 copy, rebuilt by one dispatch at the start of every step's forward.
 * @module
 */
import { bindBuffers } from "../gpu/buffers.ts";
import { streamPlan } from "../gpu/runs.ts";
import { uniformLayout } from "../gpu/uniform.ts";
import type { ElemType } from "../gpu/wgsl.ts";
import type { Dispatch, OpContext } from "./types.ts";

const FILE = "ops/cast.wgsl";
const WG = 64;
const CAST_PARAMS = uniformLayout(FILE, "Params", [
  ["n4", "u32"],
  ["_p0", "u32"],
  ["_p1", "u32"],
  ["_p2", "u32"],
]);
const ELEM_BYTES: Record<ElemType, number> = { f32: 4, f16: 2 };

/** The `floats` (a multiple of 4) of `src` as `elem` in a buffer of their own, and the dispatch that fills it. */
export function planCast(
  ctx: OpContext,
  src: GPUBuffer,
  floats: number,
  elem: ElemType,
  label: string,
  chunk: number,
): { buffer: GPUBuffer; dispatch: Dispatch } {
  if (floats % 4 !== 0) throw new Error(`planCast: ${label} has ${floats} floats, not a multiple of 4`);
  const n4 = floats / 4;
  const buffer = ctx.scratch(floats * ELEM_BYTES[elem], label);
  const plan = streamPlan(n4, WG, chunk);
  const pipeline = ctx.programs.get(FILE, "main", { WG, CHUNK: plan.chunk }, elem);
  const u = ctx.uniform(CAST_PARAMS.pack({ n4 }, label), label);
  return {
    buffer,
    dispatch: {
      label,
      pipeline,
      bindGroup: bindBuffers(ctx.device, pipeline, [src, buffer, u], label),
      workgroups: [plan.workgroups, 1, 1],
      bytes: floats * (4 + ELEM_BYTES[elem]),
      opClass: "cast",
    },
  };
}
