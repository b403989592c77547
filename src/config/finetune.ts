/**
 * The fine-tune config: the keys of the golden `scenario.json` files (train.py's options that change numerics)
 * with train.py v7.0's defaults, and `hyp` with hyp.scratch-low.yaml's (docs/training.md §8.2). Parsed once,
 * at the edge (CLI file + flags, HTTP body); everything below receives a {@link FinetuneConfig} with every
 * key present.
 *
 * @example
 * ```ts
 * const config = parseFinetuneConfig(JSON.parse(await Deno.readTextFile("scenario.json")), "scenario.json");
 * config.hyp.lr0; // 0.01
 * ```
 * @module
 */
import { z } from "zod";

/** hyp.scratch-low.yaml, the train.py default since v6.1. */
export const HypSchema = z.strictObject({
  lr0: z.number().positive().default(0.01),
  lrf: z.number().positive().default(0.01),
  momentum: z.number().min(0).max(1).default(0.937),
  weight_decay: z.number().min(0).default(0.0005),
  warmup_epochs: z.number().min(0).default(3.0),
  warmup_momentum: z.number().min(0).max(1).default(0.8),
  warmup_bias_lr: z.number().min(0).default(0.1),
  box: z.number().min(0).default(0.05),
  cls: z.number().min(0).default(0.5),
  cls_pw: z.number().positive().default(1.0),
  obj: z.number().min(0).default(1.0),
  obj_pw: z.number().positive().default(1.0),
  iou_t: z.number().min(0).max(1).default(0.2),
  anchor_t: z.number().positive().default(4.0),
  fl_gamma: z.number().min(0).default(0.0),
  hsv_h: z.number().min(0).max(1).default(0.015),
  hsv_s: z.number().min(0).max(1).default(0.7),
  hsv_v: z.number().min(0).max(1).default(0.4),
  degrees: z.number().min(0).max(360).default(0.0),
  translate: z.number().min(0).max(0.9).default(0.1),
  scale: z.number().min(0).max(0.9).default(0.5),
  shear: z.number().min(0).max(10).default(0.0),
  perspective: z.number().min(0).max(0.001).default(0.0),
  flipud: z.number().min(0).max(1).default(0.0),
  fliplr: z.number().min(0).max(1).default(0.5),
  mosaic: z.number().min(0).max(1).default(1.0),
  mixup: z.number().min(0).max(1).default(0.0),
  copy_paste: z.number().min(0).max(1).default(0.0),
});
export type Hyp = z.infer<typeof HypSchema>;

/** ModelEMA(decay, tau): decay·(1 - exp(-updates/tau)). */
export const EmaSchema = z.strictObject({
  decay: z.number().gt(0).lt(1).default(0.9999),
  tau: z.number().positive().default(2000),
});

/** The largest YOLOv5 P5 stride: train.py's image size must be a multiple of it. */
const MAX_STRIDE = 32;

/**
 * Upper bounds of the keys that size a job: YOLOv5's largest training size (the P6 models' 1280), batches well
 * past what one GPU trains at that size, and ten times train.py's longest published schedule (300 epochs) rounded
 * up. The job's memory is checked separately, against the server's budget (src/train/training_memory.ts).
 */
export const FINETUNE_LIMITS = {
  imgsz: 1280,
  batch_size: 256,
  epochs: 3000,
  nbs: 1024,
  /** Layer indices (`freeze`): YOLOv5 models have 25 layers, P6 ones 34. */
  layer: 1000,
  seed: 2 ** 32 - 1,
} as const;

const atMost = (key: keyof typeof FINETUNE_LIMITS) =>
  [FINETUNE_LIMITS[key], `${key} is at most ${FINETUNE_LIMITS[key]}`] as const;

export const FinetuneConfigSchema = z.strictObject({
  imgsz: z.number().int().positive().multipleOf(MAX_STRIDE, `imgsz must be a multiple of ${MAX_STRIDE}`)
    .max(...atMost("imgsz")).default(640),
  batch_size: z.number().int().positive().max(...atMost("batch_size")).default(16),
  epochs: z.number().int().positive().max(...atMost("epochs")).default(100),
  optimizer: z.enum(["SGD", "Adam", "AdamW"]).default("SGD"),
  cos_lr: z.boolean().default(false),
  /** `--freeze N` (layers 0..N-1) or an explicit list of layer indices (docs/training.md §8.1). */
  freeze: z.union([
    z.number().int().min(0).max(...atMost("layer")),
    z.array(z.number().int().min(0).max(...atMost("layer"))).min(1).max(FINETUNE_LIMITS.layer),
  ]).default(0),
  label_smoothing: z.number().min(0).lt(1).default(0.0),
  /** nominal batch size: gradients accumulate to about this many images per optimizer step */
  nbs: z.number().int().positive().max(...atMost("nbs")).default(64),
  /** clip_grad_norm_ max norm */
  max_grad_norm: z.number().positive().default(10.0),
  ema: EmaSchema.prefault({}),
  augment: z.boolean().default(true),
  shuffle: z.boolean().default(true),
  /**
   * mixed precision (train.py's default on CUDA): f16 GEMM operands with f32 accumulation and a dynamic loss
   * scale (src/optim/grad_scaler.ts); "auto": on for hardware adapters with shader-f16, off on fallback ones
   * (src/train/precision.ts resolveAmp)
   */
  amp: z.union([z.boolean(), z.literal("auto")]).default("auto"),
  /** share of the images held out for validation when the dataset has no val/ folder */
  val_fraction: z.number().min(0).lt(1).default(0.1),
  /**
   * fine-tune from captures: the share of the train set drawn from earlier rounds' captures (those captured
   * before the base version was made), the rest being this round's; absent: every labelled train capture
   */
  replay_fraction: z.number().min(0).max(1).optional(),
  /** when the EMA result becomes the active version: if mAP@0.5:0.95 does not drop, always, or never */
  activate: z.enum(["if_better", "always", "never"]).default("if_better"),
  /** train.py `--seed`: shuffling, augmentation and the validation split */
  seed: z.number().int().min(0).max(...atMost("seed")).default(0),
  hyp: HypSchema.prefault({}),
  // Scenario files also name their model, data folder and image order; accepted so they load as configs.
  model: z.string().optional(),
  data: z.string().optional(),
  images_in_order: z.array(z.string()).optional(),
});
export type FinetuneConfig = z.infer<typeof FinetuneConfigSchema>;
/** What a user may write: any key may be left out. */
export type FinetuneConfigInput = z.input<typeof FinetuneConfigSchema>;

/**
 * Validate a config object (`what` names its origin in errors). Throws a TypeError listing every offending key,
 * e.g. "Invalid fine-tune config in 'a.json': hyp.lr0: Too small: expected number to be >0; epoch: Unrecognized key".
 */
export function parseFinetuneConfig(input: unknown, what = "fine-tune config"): FinetuneConfig {
  const result = FinetuneConfigSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
  throw new TypeError(`Invalid fine-tune config in '${what}': ${issues.join("; ")}`);
}

/**
 * Apply command-line overrides such as `epochs=3` or `hyp.lr0=0.02` to a raw config object (before parsing).
 * Values are read as JSON when they parse (numbers, booleans, lists), else kept as strings, so the schema
 * reports type errors with the key's name.
 */
export function applyOverrides(
  raw: Record<string, unknown>,
  overrides: Record<string, string>,
): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(raw);
  for (const [key, text] of Object.entries(overrides)) {
    const path = key.split(".");
    let node = out;
    for (const part of path.slice(0, -1)) {
      const child = node[part];
      if (child !== undefined && (typeof child !== "object" || child === null || Array.isArray(child))) {
        throw new TypeError(`Cannot override '${key}': '${part}' is not an object`);
      }
      node = (node[part] ??= {}) as Record<string, unknown>;
    }
    node[path[path.length - 1]] = parseValue(text);
  }
  return out;
}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
