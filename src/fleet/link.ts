/**
 * The connection to a fleet's NATS server and the JetStream buckets the fleet shares, named after the fleet so
 * several fleets can share one NATS account: `<fleet>-registry` (KV: active versions, version metas, id
 * counters) and `<fleet>-models` (object store: every version's ONNX).
 * @module
 */
import { credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";

export interface FleetLinkOptions {
  /** `nats://host:port` (comma-separated for a cluster); `tls://` for TLS. */
  servers: string;
  /** A NATS `.creds` file (user JWT and nkey seed). */
  credsFile?: string;
  /** Prefix of every bucket. */
  fleet: string;
  /** This node's name, also its NATS connection name. */
  node: string;
}

export interface FleetLink {
  nc: NatsConnection;
  registry: KV;
  models: ObjectStore;
}

/**
 * Connects (waiting for the server as long as it takes: a node starts and serves while NATS is down) and opens
 * the buckets, creating them on first use. Reconnects forever after.
 */
export async function connectFleet(options: FleetLinkOptions): Promise<FleetLink> {
  const nc = await connect({
    servers: options.servers.split(",").map((s) => s.trim()),
    name: `kestrel-${options.node}`,
    authenticator: options.credsFile ? credsAuthenticator(await Deno.readFile(options.credsFile)) : undefined,
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
  try {
    const js = jetstream(nc);
    // One value per key: the registry needs the latest state, and a tombstone tells a returning node a delete.
    const registry = await new Kvm(js).create(`${options.fleet}-registry`, { history: 1 });
    const models = await new Objm(js).create(`${options.fleet}-models`);
    return { nc, registry, models };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
