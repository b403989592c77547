/**
 * A job's checkpoint on disk: the trainer's state in `state-<epoch>-<uuid>.bin` and `checkpoint.json` naming it
 * with its position (epoch, iteration), size and SHA-256. The state file is durable before the pointer is replaced atomically, and the old
 * state file is removed only after, so a crash at any point leaves the previous or the new checkpoint whole.
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { writeJsonAtomic, writeSynced } from "../registry/atomic.ts";
import type { Checkpoint, CheckpointHooks } from "./types.ts";

const POINTER = "checkpoint.json";

const PointerSchema = z.object({
  epoch: z.number().int().min(0),
  // Pointers written before mid-epoch checkpoints existed are epoch ends.
  iteration: z.number().int().min(0).default(0),
  file: z.string().regex(/^state-[\w-]+\.bin$/),
  bytes: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
type Pointer = z.infer<typeof PointerSchema>;

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class FsCheckpoints implements CheckpointHooks {
  /** `onSaved` runs after each durable save (the service records its position in the job). */
  constructor(
    readonly dir: string,
    private readonly onSaved: (saved: Omit<Checkpoint, "state">) => Promise<void> = async () => {},
  ) {}

  /** The stored checkpoint, null when none was taken; throws naming the file when it is damaged. */
  async load(): Promise<Checkpoint | null> {
    const pointer = await this.pointer();
    if (!pointer) return null;
    const path = join(this.dir, pointer.file);
    const state = await Deno.readFile(path);
    if (state.length !== pointer.bytes || await sha256(state) !== pointer.sha256) {
      throw new Error(
        `Checkpoint '${path}' is damaged: expected ${pointer.bytes} bytes with SHA-256 ${pointer.sha256}`,
      );
    }
    return { epoch: pointer.epoch, iteration: pointer.iteration, state };
  }

  async save(checkpoint: Checkpoint): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    const previous = await this.pointer().catch(() => null);
    const file = `state-${checkpoint.epoch}-${crypto.randomUUID()}.bin`;
    const state = new Uint8Array(checkpoint.state);
    await writeSynced(join(this.dir, file), state);
    const pointer: Pointer = {
      epoch: checkpoint.epoch,
      iteration: checkpoint.iteration,
      file,
      bytes: state.length,
      sha256: await sha256(state),
    };
    await writeJsonAtomic(join(this.dir, POINTER), pointer);
    if (previous) await Deno.remove(join(this.dir, previous.file)).catch(() => {});
    await this.onSaved({ epoch: checkpoint.epoch, iteration: checkpoint.iteration });
  }

  private async pointer(): Promise<Pointer | null> {
    const path = join(this.dir, POINTER);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
    const parsed = PointerSchema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new Error(`Checkpoint pointer '${path}' is malformed: ${parsed.error.message}`);
    }
    return parsed.data;
  }
}
