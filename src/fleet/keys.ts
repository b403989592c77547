/**
 * Where the registry lives in the fleet's KV bucket and object store:
 * ```
 * active.<model>        {"version": v}        the version every node serves (compare-and-set on its revision)
 * canary.<model>        {"version": v, "nodes": [...]}   those nodes serve v instead, until the next activation
 * next.<model>          {"version": v}        the last version id handed out (compare-and-set, so ids never collide)
 * meta.<model>.<v>      VersionMeta           a version exists; a delete marker means it was deleted
 * object <model>/<v>.onnx                     the version's ONNX
 * ```
 * Model names may hold `.`, the KV's token separator; they never hold `=`, so `.` is written as `=`.
 * @module
 */

/** Fleet and node names become bucket names and KV keys: letters, digits, `_` and `-`. */
export const FLEET_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export type RegistryKey =
  | { kind: "active"; name: string }
  | { kind: "canary"; name: string }
  | { kind: "next"; name: string }
  | { kind: "meta"; name: string; version: number };

const encodeName = (name: string) => name.replaceAll(".", "=");
const decodeName = (token: string) => token.replaceAll("=", ".");

export const activeKey = (name: string) => `active.${encodeName(name)}`;
export const canaryKey = (name: string) => `canary.${encodeName(name)}`;
export const nextKey = (name: string) => `next.${encodeName(name)}`;
export const metaKey = (name: string, version: number) => `meta.${encodeName(name)}.${version}`;
/** A labelled capture in `<fleet>-captures` (capture ids are KV-safe); `captureKeys` matches a model's. */
export const captureKey = (model: string, id: string) => `${encodeName(model)}.${id}`;
export const captureKeys = (model: string) => `${encodeName(model)}.>`;
export const objectName = (name: string, version: number) => `${name}/${version}.onnx`;

/** The key's meaning, or null for a key this code did not write. */
export function parseRegistryKey(key: string): RegistryKey | null {
  const parts = key.split(".");
  if (parts.length === 2 && (parts[0] === "active" || parts[0] === "next" || parts[0] === "canary")) {
    return { kind: parts[0], name: decodeName(parts[1]) };
  }
  if (parts.length === 3 && parts[0] === "meta" && /^[1-9]\d*$/.test(parts[2])) {
    return { kind: "meta", name: decodeName(parts[1]), version: Number(parts[2]) };
  }
  return null;
}
