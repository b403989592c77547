/**
 * A fleet job's shared state (on node a, in the status given), a fine-tune request of one labelled frame, and
 * a nats-server with a connected fleet link for the length of a test.
 * @module
 */
import { zipSync } from "fflate";
import sharp from "sharp";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import type { FleetJob } from "../../src/fleet/job_state.ts";
import { connectFleet, type FleetLink } from "../../src/fleet/link.ts";
import { NatsServer } from "../../src/fleet/local_nats.ts";
import { queuedJob } from "../../src/jobs/state.ts";
import type { Job } from "../../src/jobs/types.ts";

/** A 32x32 frame with one box, as a fine-tune request (config and dataset zip) of `epochs` epochs. */
export async function oneFrameFinetuneForm(epochs: number): Promise<FormData> {
  const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: "#1478c8" } })
    .png().toBuffer();
  const label = new TextEncoder().encode("0 0.5 0.5 0.3 0.3\n");
  const form = new FormData();
  form.append("config", JSON.stringify({ epochs }));
  form.append(
    "dataset",
    new File([zipSync({ "images/a.png": new Uint8Array(png), "labels/a.txt": label })], "d.zip"),
  );
  return form;
}

export function fleetJobState(id: string, status: FleetJob["status"] = "running"): FleetJob {
  const job: Job = {
    ...queuedJob({
      id,
      seq: 0,
      model: "tiny",
      baseVersion: 1,
      adapter: "default",
      config: parseFinetuneConfig({ epochs: 3 }),
      createdAt: new Date().toISOString(),
      dataset: { files: 2, bytes: 10 },
    }),
    status: "running",
    attempts: 1,
    node: "a",
    checkpoint: null,
  };
  return {
    job,
    status,
    node: "a",
    attempts: 1,
    handBacks: 0,
    workItem: null,
    progress: job.progress,
    checkpoint: null,
    result: null,
    error: null,
    heartbeat: null,
  };
}

/** Runs `fn` with a fresh nats-server (its store under `dir`) and a fleet link to it, then stops both. */
export async function withFleet(
  fn: (link: FleetLink, nats: NatsServer, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-checkpoints-" });
  const nats = await NatsServer.start(dir);
  const link = await connectFleet({ servers: nats.url, fleet: "test", node: "a" });
  try {
    await fn(link, nats, dir);
  } finally {
    await link.nc.close();
    await nats.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
