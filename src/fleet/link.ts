/**
 * The connection to a fleet's NATS server and the JetStream buckets the fleet shares, named after the fleet so
 * several fleets can share one NATS account: `<fleet>-registry` (KV: active versions, version metas, id
 * counters), `<fleet>-models` (object store: every version's ONNX), `<fleet>-jobs` (KV: each fine-tune's state),
 * `<fleet>-jobdata` (object store: datasets and checkpoints), `<fleet>-captures` (KV and object store of the same
 * name: labelled captures' metas and images) and the work-queue stream `<fleet>-work` (subject
 * `<fleet>.work`) whose one durable consumer `workers` hands each job to exactly one node with jobs on.
 * @module
 */
import { credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import {
  AckPolicy,
  jetstream,
  type JetStreamClient,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";

export interface FleetLinkOptions {
  /** `nats://host:port` (comma-separated for a cluster); TLS is used when the server requires it. */
  servers: string;
  /** A NATS `.creds` file (user JWT and nkey seed). */
  credsFile?: string;
  /** The CA (PEM file) of the server's TLS certificate, when not one the system trusts. */
  caFile?: string;
  /** Prefix of every bucket. */
  fleet: string;
  /** This node's name, also its NATS connection name. */
  node: string;
}

export interface FleetLink {
  nc: NatsConnection;
  js: JetStreamClient;
  registry: KV;
  models: ObjectStore;
  jobs: KV;
  jobData: ObjectStore;
  /** Labelled captures: their metas (KV, key `<model>.<id>`) and images (object store, name `<id>`). */
  captures: KV;
  captureImages: ObjectStore;
  /** The work-queue stream's name and subject, and its consumer's. */
  work: { stream: string; subject: string; consumer: string };
}

/**
 * Without a heartbeat (`working()`) for this long, a job's message goes to another node: the running node is
 * taken for dead. Heartbeats go out every third of it.
 */
export const WORK_ACK_WAIT_MS = 10_000;
/**
 * Deliveries of one work item that may run its job before the fleet gives up on it (the job service's default
 * attempt limit). A hand-back is not a delivery (work_item.ts). The consumer delivers an item once more: the
 * node given that delivery does not run the job but marks it failed, so a job whose runs keep dying ends.
 */
export const WORK_MAX_DELIVER = 3;
const CONSUMER_MAX_DELIVER = WORK_MAX_DELIVER + 1;

/**
 * Connects (waiting for the server as long as it takes: a node starts and serves while NATS is down) and opens
 * the buckets, creating them on first use. Reconnects forever after.
 */
export async function connectFleet(options: FleetLinkOptions): Promise<FleetLink> {
  const nc = await connect({
    servers: options.servers.split(",").map((s) => s.trim()),
    name: `kestrel-${options.node}`,
    authenticator: options.credsFile ? credsAuthenticator(await Deno.readFile(options.credsFile)) : undefined,
    tls: options.caFile ? { caFile: options.caFile } : undefined,
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
  try {
    const js = jetstream(nc);
    // One value per key: the registry needs the latest state, and a tombstone tells a returning node a delete.
    const registry = await new Kvm(js).create(`${options.fleet}-registry`, { history: 1 });
    const models = await new Objm(js).create(`${options.fleet}-models`);
    const jobs = await new Kvm(js).create(`${options.fleet}-jobs`, { history: 1 });
    const jobData = await new Objm(js).create(`${options.fleet}-jobdata`);
    const captures = await new Kvm(js).create(`${options.fleet}-captures`, { history: 1 });
    const captureImages = await new Objm(js).create(`${options.fleet}-captures`);
    const work = { stream: `${options.fleet}-work`, subject: `${options.fleet}.work`, consumer: "workers" };
    const jsm = await jetstreamManager(nc);
    await jsm.streams.info(work.stream).catch(() =>
      jsm.streams.add({
        name: work.stream,
        subjects: [work.subject],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
      })
    );
    const consumer = { ack_wait: nanos(WORK_ACK_WAIT_MS), max_deliver: CONSUMER_MAX_DELIVER };
    const info = await jsm.consumers.info(work.stream, work.consumer).catch(() =>
      jsm.consumers.add(work.stream, {
        durable_name: work.consumer,
        ack_policy: AckPolicy.Explicit,
        ...consumer,
      })
    );
    // A consumer created by an earlier release gave up one delivery sooner, without marking the job failed.
    if (info.config.max_deliver !== consumer.max_deliver) {
      await jsm.consumers.update(work.stream, work.consumer, consumer);
    }
    return { nc, js, registry, models, jobs, jobData, captures, captureImages, work };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
