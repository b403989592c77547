/**
 * Who is in the fleet: every node puts its record into the KV bucket `<fleet>-nodes` every few seconds (name,
 * backend, adapter, jobs on/off, the versions it serves, its lag behind the registry KV, its detects of the last
 * minute). Entries expire after
 * {@link PRESENCE_TTL_MS}, so a node that is gone drops out of `GET /v1/fleet` on its own.
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import type { FleetLink } from "./link.ts";

/** How often a node puts its record. */
export const PRESENCE_EVERY_MS = 5_000;
/** A record not renewed for this long is removed by the server. */
export const PRESENCE_TTL_MS = 60_000;

export const NodeInfoSchema = z.object({
  name: z.string(),
  /** ISO time of the node's last record. */
  last_seen: z.string(),
  backend: z.string(),
  /** The GPU adapter it trains on, or null without one. */
  adapter: z.string().nullable(),
  /** Whether that adapter is a hardware GPU (not a software one such as lavapipe). */
  hardware_gpu: z.boolean(),
  jobs: z.boolean(),
  /** Model name -> the version this node serves. */
  active: z.record(z.string(), z.number().int()),
  /** Registry KV revisions this node had not applied yet when it wrote the record. */
  kv_lag: z.number().int().min(0),
  /**
   * Its detects of the last minute per model version (count, median ms), to compare a canary with the rest;
   * empty in records of nodes from before it was reported.
   */
  detect: z.array(z.object({
    model: z.string(),
    version: z.number().int(),
    count: z.number().int().min(0),
    p50_ms: z.number(),
  })).default([]),
});
export type NodeInfo = z.infer<typeof NodeInfoSchema>;

export async function openPresence(link: FleetLink, fleet: string): Promise<KV> {
  return await new Kvm(link.js).create(`${fleet}-nodes`, { history: 1, ttl: PRESENCE_TTL_MS });
}

/** Every node's latest record, by name. */
export async function readPresence(kv: KV): Promise<NodeInfo[]> {
  const nodes: NodeInfo[] = [];
  for await (const key of await kv.keys()) {
    const entry = await kv.get(key);
    if (entry?.operation !== "PUT") continue;
    const parsed = NodeInfoSchema.safeParse(entry.json());
    if (parsed.success) nodes.push(parsed.data);
  }
  return nodes.sort((a, b) => a.name.localeCompare(b.name));
}
