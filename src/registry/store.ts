/**
 * The registry's storage contract: versions of named models, each an immutable ONNX file plus its meta, and one
 * active pointer per model. {@link FsStore} keeps them under `--data-dir` with crash-safe writes;
 * {@link MemoryStore} keeps them in memory for tests and for running without a data directory.
 * @module
 */
import { z } from "zod";

/** Where a version came from. */
export const SourceSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("upload") }),
  z.object({ type: z.literal("finetune"), job_id: z.string() }),
  z.object({ type: z.literal("startup"), path: z.string() }),
]);
export type Source = z.infer<typeof SourceSchema>;

/** meta.json of one version. */
export const VersionMetaSchema = z.object({
  name: z.string(),
  version: z.number().int().positive(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().nonnegative(),
  created: z.string(),
  /** The version this one was derived from (a fine-tune's starting weights), else null. */
  parent: z.number().int().positive().nullable(),
  source: SourceSchema,
  /** Evaluation results a fine-tune job recorded (e.g. map50, map50_95), else null. */
  metrics: z.record(z.string(), z.number()).nullable(),
  /** What inspectYolo found, so listings need not parse the ONNX. */
  nc: z.number().int().positive(),
  names: z.array(z.string()),
  input_height: z.number().int().positive().nullable(),
  input_width: z.number().int().positive().nullable(),
});
export type VersionMeta = z.infer<typeof VersionMetaSchema>;

/** A version's meta before the store assigns its id. */
export type NewVersion = Omit<VersionMeta, "version" | "name">;

/** Persistence for the registry. Implementations serialise nothing themselves: the Registry calls one at a time. */
export interface Store {
  /** Every model name with its versions (ascending) and active version. */
  load(): Promise<Map<string, { versions: VersionMeta[]; active: number | null }>>;
  /**
   * Persist a new version under the next id for `name` (ids increase monotonically and are never reused, even
   * after a delete). When this resolves the version is durable; when it throws or the process dies, no
   * version appears.
   */
  addVersion(name: string, bytes: Uint8Array, meta: NewVersion): Promise<VersionMeta>;
  /**
   * Persist a version whose id was allocated elsewhere (a fleet replica copying another node's version); later
   * {@link addVersion} ids stay above it. Durable or absent, like addVersion.
   */
  putVersion(meta: VersionMeta, bytes: Uint8Array): Promise<void>;
  /** The ONNX bytes of a version. */
  readModel(name: string, version: number): Promise<Uint8Array>;
  /** The ONNX bytes of a version as a stream (downloads), so a request holds one chunk, not the file. */
  openModel(name: string, version: number): Promise<ReadableStream<Uint8Array>>;
  /** Durably point `name` at `version` (which exists). */
  setActive(name: string, version: number): Promise<void>;
  /** Remove a version that is not active. */
  deleteVersion(name: string, version: number): Promise<void>;
}
