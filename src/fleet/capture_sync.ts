/**
 * Labelled captures shared across the fleet, so a fine-tune from captures on any node trains on frames every box
 * captured: each node puts its labelled captures into `<fleet>-captures` (the meta, with the labels and split, in
 * the KV under `<model>.<id>`; the image in the object store under `<id>`) and takes them out again when they
 * are rejected or deleted. Changes are replicated as they happen while NATS is connected; on joining and after
 * every reconnect a node reconciles, so a label made while NATS was down reaches the fleet too. Each fleet
 * write is bounded in time and a failed one (NATS went away mid-write) schedules another reconcile, so one stuck
 * write can neither hold back the ones after it nor lose its change. A reconcile checks the images too, so a
 * capture whose image the fleet lost is published again. Other nodes' captures are read from the fleet when a
 * captures dataset is written; they are not copied into this node's capture store, and one whose image is
 * missing refuses the dataset rather than leaving the frame out unsaid.
 * @module
 */
import { dirname, join } from "node:path";
import { z } from "zod";
import { capturePaths } from "../capture/dataset.ts";
import { yoloLabelText } from "../capture/labels.ts";
import { RegistryError } from "../registry/errors.ts";
import type { CaptureStore } from "../capture/store.ts";
import type { CaptureMeta } from "../capture/types.ts";
import { captureKey, captureKeys } from "./keys.ts";
import type { FleetLink } from "./link.ts";

/** A fleet capture's KV value: the capture's meta as its node stores it, and that node's name. */
const SharedCaptureSchema = z.object({
  node: z.string(),
  meta: z.custom<CaptureMeta>((value) =>
    typeof value === "object" && value !== null && typeof (value as CaptureMeta).id === "string" &&
    (value as CaptureMeta).status === "labelled"
  ),
});
type SharedCapture = z.infer<typeof SharedCaptureSchema>;

/** Longest a fleet write (one capture's put or withdrawal, or a reconcile) may take before the queue moves on:
 * nats.js can keep a JetStream request pending across a reconnect, and the writes run one at a time. */
const WRITE_TIMEOUT_MS = 15_000;
/** Wait before reconciling again after a failed write (while connected; a reconnect reconciles anyway). */
const RETRY_MS = 1_000;

export class CaptureReplication {
  private link: FleetLink | null = null;
  /** Fleet writes run one at a time, in the order the changes happened. */
  private writes: Promise<unknown> = Promise.resolve();
  /** The pending reconcile after a failed write, if one is scheduled. */
  private retry: ReturnType<typeof setTimeout> | undefined;
  /**
   * Whether NATS is connected now. While it is away no write is tried: nats.js drops what was sent while
   * disconnected when it redials, so such a write could only time out; the reconnect's reconcile catches up.
   */
  private online = false;

  constructor(
    private readonly store: CaptureStore,
    private readonly node: string,
    private readonly log: (message: string) => void,
  ) {
    store.watch((meta, removed) => {
      // A capture removed while not labelled (evicted for room, or deleted after a reject) is not in the fleet:
      // the reject took it out already, so evictions of a busy camera cost no fleet round-trip.
      if (removed && meta.status !== "labelled") return;
      if (this.link && this.online) void this.enqueue(() => this.apply(this.link!, meta, removed));
    });
  }

  /** Connected (or reconnected): bring the fleet's copy of this node's captures in line with the store. */
  connected(link: FleetLink): Promise<void> {
    this.link = link;
    this.online = true;
    return this.enqueue(() => this.reconcile(link));
  }

  /** NATS went away: changes wait for the reconcile of the next {@link connected}. */
  disconnected(): void {
    this.online = false;
  }

  /** Resolves once every change seen so far was written to the fleet (tests). */
  settled(): Promise<unknown> {
    return this.writes;
  }

  /**
   * Writes the fleet's labelled captures of `model` that this node does not hold under `dir`, in the layout of
   * a captures dataset (capture/dataset.ts); null while NATS is not connected.
   */
  async writeDataset(dir: string, model: string): Promise<{ train: number; val: number } | null> {
    const link = this.link;
    if (!link || link.nc.isClosed()) return null;
    const counts = { train: 0, val: 0 };
    for (const shared of await this.read(link, model)) {
      const { meta } = shared;
      if (this.store.get(meta.id)) continue; // this node's own: written from its store
      const image = await link.captureImages.getBlob(meta.id);
      if (!image) {
        if (await this.withdrawn(link, meta)) continue;
        throw new RegistryError(
          "unavailable",
          `Capture ${meta.id} of node ${shared.node} is in the fleet without its image; node ${shared.node} ` +
            "publishes it again when it next reconciles (on reconnecting); no dataset was written",
        );
      }
      const paths = capturePaths(meta);
      await Deno.mkdir(dirname(join(dir, paths.image)), { recursive: true });
      await Deno.mkdir(dirname(join(dir, paths.label)), { recursive: true });
      await Deno.writeFile(join(dir, paths.image), image);
      await Deno.writeTextFile(join(dir, paths.label), yoloLabelText(meta));
      counts[meta.split === "val" ? "val" : "train"]++;
    }
    return counts;
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.writes.then(() => bounded(work(), WRITE_TIMEOUT_MS)).catch((err) => {
      this.log(`fleet: captures: ${(err as Error).message}; reconciled again`);
      this.reconcileLater();
    });
    this.writes = run;
    return run;
  }

  /** One reconcile soon after a failure; skipped while NATS is away (the reconnect reconciles). */
  private reconcileLater(): void {
    if (this.retry !== undefined) return;
    const retry = setTimeout(() => {
      this.retry = undefined;
      const link = this.link;
      if (link && this.online && !link.nc.isClosed() && !link.nc.isDraining()) {
        void this.enqueue(() => this.reconcile(link));
      }
    }, RETRY_MS);
    // A retry never keeps a closing process alive.
    Deno.unrefTimer(retry);
    this.retry = retry;
  }

  /** The image before the meta, so a node that sees the meta finds the image; withdrawn the other way round. */
  private async apply(link: FleetLink, meta: CaptureMeta, removed: boolean): Promise<void> {
    const key = captureKey(meta.model, meta.id);
    if (!removed && meta.status === "labelled") {
      await link.captureImages.putBlob({ name: meta.id }, await this.store.image(meta.id));
      await link.captures.put(key, JSON.stringify({ node: this.node, meta } satisfies SharedCapture));
      return;
    }
    if (await link.captures.get(key)) {
      await link.captures.delete(key);
      await link.captureImages.delete(meta.id).catch(() => {}); // no image left behind is harmless
    }
  }

  /** Whether `meta`'s capture left the fleet since its key was read (its image goes right after its key). */
  private async withdrawn(link: FleetLink, meta: CaptureMeta): Promise<boolean> {
    return (await link.captures.get(captureKey(meta.model, meta.id)))?.operation !== "PUT";
  }

  /**
   * Publish what the fleet lacks or has stale (the meta, or an image that is missing or not the capture's size);
   * withdraw this node's captures the store no longer labels.
   */
  private async reconcile(link: FleetLink): Promise<void> {
    const imageSizes = new Map((await link.captureImages.list()).map((info) => [info.name, info.size]));
    const published = new Map<string, CaptureMeta>();
    for await (const key of await link.captures.keys()) {
      const entry = await link.captures.get(key);
      if (entry?.operation !== "PUT") continue;
      const parsed = SharedCaptureSchema.safeParse(entry.json());
      if (parsed.success && parsed.data.node === this.node) {
        published.set(parsed.data.meta.id, parsed.data.meta);
      }
    }
    for (const meta of this.store.all({ status: "labelled" })) {
      const there = published.get(meta.id);
      published.delete(meta.id);
      const current = there !== undefined && JSON.stringify(there) === JSON.stringify(meta);
      if (!current || imageSizes.get(meta.id) !== meta.bytes) await this.apply(link, meta, false);
    }
    for (const gone of published.values()) await this.apply(link, gone, true);
  }

  private async read(link: FleetLink, model: string): Promise<SharedCapture[]> {
    const captures: SharedCapture[] = [];
    for await (const key of await link.captures.keys(captureKeys(model))) {
      const entry = await link.captures.get(key);
      if (entry?.operation !== "PUT") continue;
      const parsed = SharedCaptureSchema.safeParse(entry.json());
      if (parsed.success) captures.push(parsed.data);
    }
    return captures.sort((a, b) => a.meta.id.localeCompare(b.meta.id));
  }
}

/** `work`, or a rejection once `ms` have passed (the work itself cannot be cancelled; its result is dropped). */
function bounded(work: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`a fleet write took over ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
