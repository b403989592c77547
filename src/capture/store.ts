/**
 * Captured frames on disk, one pair of files per capture under `<captures>/frames/`: `<id>.img` (the bytes as
 * received) and `<id>.json` (CaptureMeta). The image is written and fsynced first, then the meta is published
 * atomically, so a crash leaves a complete capture or an image without meta, which open() removes; deletion goes
 * the other way (meta first). Ids sort by capture time, so "newest first" is the reverse id order. An index of
 * the metas is kept in memory (they are small), and every write goes through one queue so a label and a delete
 * of the same capture cannot interleave.
 */
import { join } from "node:path";
import { writeJsonAtomic, writeSynced } from "../registry/atomic.ts";
import type { CaptureMeta, CaptureSplit, CaptureStatus, NewCapture } from "./types.ts";

export interface CaptureFilter {
  model?: string;
  status?: CaptureStatus;
  split?: CaptureSplit;
  camera?: string;
}

export interface CapturePage {
  captures: CaptureMeta[];
  /** Pass as `cursor` for the next (older) page; null on the last one. */
  next_cursor: string | null;
}

/** What adding a capture did: stored (with the captures evicted for room), or refused for the budget. */
export type AddOutcome =
  | { stored: CaptureMeta; evicted: number }
  | { stored: null; reason: "over_budget" };

/** Told of each capture change once it is on disk: `removed` for a delete or eviction, else its new meta. */
export type CaptureWatcher = (meta: CaptureMeta, removed: boolean) => void;

export const CAPTURE_ID_PATTERN = /^[0-9a-z]{9}-[0-9a-z]{3}-[0-9a-f]{6}$/;

export class CaptureStore {
  private readonly metas = new Map<string, CaptureMeta>();
  /** Ids in ascending (capture time) order. */
  private order: string[] = [];
  private readonly bytesByModel = new Map<string, number>();
  private lastMs = 0;
  private seq = 0;
  private writes: Promise<unknown> = Promise.resolve();
  private readonly watchers = new Set<CaptureWatcher>();

  private constructor(private readonly dir: string) {}

  /** Loads the index; removes what a crash mid-write left (images without meta, temp files). */
  static async open(dir: string, log: (message: string) => void): Promise<CaptureStore> {
    await Deno.mkdir(dir, { recursive: true });
    const store = new CaptureStore(dir);
    const images = new Set<string>();
    // Ids whose meta exists but does not parse: their images are kept for a person to look at.
    const unreadable = new Set<string>();
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile) continue;
      const path = join(dir, entry.name);
      if (entry.name.includes(".tmp-")) {
        await Deno.remove(path).catch(() => {});
      } else if (entry.name.endsWith(".img")) {
        images.add(entry.name.slice(0, -4));
      } else if (entry.name.endsWith(".json")) {
        try {
          const meta = JSON.parse(await Deno.readTextFile(path)) as CaptureMeta;
          store.index(meta);
        } catch (err) {
          unreadable.add(entry.name.slice(0, -5));
          log(`capture ${path} is unreadable, left as it is: ${(err as Error).message}`);
        }
      }
    }
    for (const id of images) {
      if (!store.metas.has(id) && !unreadable.has(id)) {
        await Deno.remove(join(dir, `${id}.img`)).catch(() => {});
      }
    }
    store.order.sort();
    return store;
  }

  private index(meta: CaptureMeta) {
    this.metas.set(meta.id, meta);
    this.order.push(meta.id);
    this.bytesByModel.set(meta.model, (this.bytesByModel.get(meta.model) ?? 0) + meta.bytes);
    const ms = parseInt(meta.id.slice(0, 9), 36), seq = parseInt(meta.id.slice(10, 13), 36);
    if (ms > this.lastMs || (ms === this.lastMs && seq > this.seq)) [this.lastMs, this.seq] = [ms, seq];
  }

  private unindex(meta: CaptureMeta) {
    this.metas.delete(meta.id);
    this.order.splice(this.order.indexOf(meta.id), 1);
    this.bytesByModel.set(meta.model, (this.bytesByModel.get(meta.model) ?? 0) - meta.bytes);
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.writes.then(work);
    this.writes = run.catch(() => {});
    return run;
  }

  /** A new id, later than every id so far (time in ms, then a counter within the millisecond). */
  private nextId(time: Date): string {
    const ms = Math.max(time.getTime(), this.lastMs);
    this.seq = ms === this.lastMs ? this.seq + 1 : 0;
    this.lastMs = ms;
    const random = Array.from(
      crypto.getRandomValues(new Uint8Array(3)),
      (b) => b.toString(16).padStart(2, "0"),
    );
    return `${ms.toString(36).padStart(9, "0")}-${this.seq.toString(36).padStart(3, "0")}-${random.join("")}`;
  }

  bytes(model: string): number {
    return this.bytesByModel.get(model) ?? 0;
  }

  /**
   * Stores `capture`, first evicting the model's oldest `new` captures, then its oldest `rejected` ones, until it
   * fits in `maxBytes`. Labelled captures are never evicted: when only they are left, the frame is refused.
   */
  add(capture: NewCapture, maxBytes: number): Promise<AddOutcome> {
    return this.serial(async () => {
      const need = capture.image.length;
      const victims: CaptureMeta[] = [];
      let freed = 0;
      for (const status of ["new", "rejected"] as const) {
        for (const id of this.order) {
          if (this.bytes(capture.model) - freed + need <= maxBytes) break;
          const meta = this.metas.get(id)!;
          if (meta.model === capture.model && meta.status === status) {
            victims.push(meta);
            freed += meta.bytes;
          }
        }
      }
      if (this.bytes(capture.model) - freed + need > maxBytes) return { stored: null, reason: "over_budget" };
      for (const victim of victims) await this.removeFiles(victim);
      const id = this.nextId(capture.time);
      const meta: CaptureMeta = {
        id,
        model: capture.model,
        version: capture.version,
        time: capture.time.toISOString(),
        bytes: need,
        format: capture.format,
        width: capture.width,
        height: capture.height,
        source: capture.source,
        predictions: capture.predictions,
        status: "new",
        labels: null,
        split: null,
      };
      // No rename needed for the image: the meta is the commit point, and its directory fsync covers both names.
      await writeSynced(join(this.dir, `${id}.img`), capture.image);
      await writeJsonAtomic(join(this.dir, `${id}.json`), meta);
      this.index(meta);
      return { stored: meta, evicted: victims.length };
    });
  }

  get(id: string): CaptureMeta | undefined {
    return this.metas.get(id);
  }

  /** Newest first, `limit` at most, older than `cursor` (an id) when given. */
  list(filter: CaptureFilter, limit: number, cursor?: string): CapturePage {
    const captures: CaptureMeta[] = [];
    for (let i = this.order.length - 1; i >= 0; i--) {
      const id = this.order[i];
      if (cursor !== undefined && id >= cursor) continue;
      const meta = this.metas.get(id)!;
      if (!matches(meta, filter)) continue;
      if (captures.length === limit) return { captures, next_cursor: captures[captures.length - 1].id };
      captures.push(meta);
    }
    return { captures, next_cursor: null };
  }

  /** Every capture matching `filter`, oldest first (datasets and exports list files in a stable order). */
  all(filter: CaptureFilter): CaptureMeta[] {
    return this.order.map((id) => this.metas.get(id)!).filter((m) => matches(m, filter));
  }

  image(id: string): Promise<Uint8Array> {
    return Deno.readFile(join(this.dir, `${id}.img`));
  }

  /** Replaces a capture's meta with `update(meta)`; undefined when it does not exist (any more). */
  update(id: string, update: (meta: CaptureMeta) => CaptureMeta): Promise<CaptureMeta | undefined> {
    return this.serial(async () => {
      const meta = this.metas.get(id);
      if (!meta) return undefined;
      const next = update(meta);
      await writeJsonAtomic(join(this.dir, `${id}.json`), next);
      this.metas.set(id, next);
      for (const watcher of this.watchers) watcher(next, false);
      return next;
    });
  }

  /** Deletes a capture; false when it did not exist. */
  remove(id: string): Promise<boolean> {
    return this.serial(async () => {
      const meta = this.metas.get(id);
      if (!meta) return false;
      await this.removeFiles(meta);
      return true;
    });
  }

  private async removeFiles(meta: CaptureMeta) {
    await Deno.remove(join(this.dir, `${meta.id}.json`));
    this.unindex(meta);
    await Deno.remove(join(this.dir, `${meta.id}.img`)).catch(() => {});
    for (const watcher of this.watchers) watcher(meta, true);
  }

  /** Follow label, reject and delete changes (a fleet replicates labelled captures); returns the unwatch. */
  watch(watcher: CaptureWatcher): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }
}

function matches(meta: CaptureMeta, filter: CaptureFilter): boolean {
  return (filter.model === undefined || meta.model === filter.model) &&
    (filter.status === undefined || meta.status === filter.status) &&
    (filter.split === undefined || meta.split === filter.split) &&
    (filter.camera === undefined || meta.source.camera === filter.camera);
}
