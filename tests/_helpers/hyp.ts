/**
 * hyp.scratch-low.yaml, train.py's default since v6.1: what src/config/finetune.ts gives a config without `hyp`,
 * so the tests train with the values a job does instead of copies of them.
 * @module
 */
import { HypSchema } from "../../src/config/finetune.ts";

export const SCRATCH_LOW = HypSchema.parse({});
