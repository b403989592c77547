/**
 * Unpacks an uploaded dataset archive (.zip, .tar.gz/.tgz or plain .tar, recognised by magic bytes) into a
 * directory. Entries are written only under that directory (absolute paths, `..`, links and device files are
 * refused), and the total unpacked size and entry count are capped while inflating, so a decompression bomb stops
 * at the cap instead of filling the disk. fflate does zip and gzip; tar is a 512-byte header format read here.
 */
import { Gunzip, unzipSync } from "fflate";
import { dirname, join } from "node:path";
import { DatasetError, type DatasetProblem } from "./problems.ts";

export interface ArchiveLimits {
  /** total bytes of all unpacked files */
  maxBytes: number;
  maxEntries: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = { maxBytes: 1 << 30, maxEntries: 100_000 };

interface Entry {
  name: string;
  data: Uint8Array;
}

/** Unpacks `bytes` under `dest` (created if needed); returns the written paths relative to `dest`, sorted. */
export async function extractArchive(
  bytes: Uint8Array,
  dest: string,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<string[]> {
  const problems: DatasetProblem[] = [];
  let entries: Entry[] = [];
  try {
    if (bytes[0] === 0x50 && bytes[1] === 0x4b) entries = unzip(bytes, limits);
    else if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
      entries = untar(gunzip(bytes, limits.maxBytes), limits, problems);
    } else if (isTar(bytes)) entries = untar(bytes, limits, problems);
    else problems.push({ file: "archive", message: "not a .zip, .tar.gz or .tar archive" });
  } catch (err) {
    problems.push({ file: "archive", message: `unreadable archive: ${(err as Error).message}` });
  }
  const files: [string, Uint8Array][] = [];
  for (const e of entries) {
    const rel = safePath(e.name);
    if (rel === null) {
      problems.push({ file: e.name, message: "path leaves the archive root (absolute or '..')" });
    } else if (rel !== "") files.push([rel, e.data]);
  }
  if (problems.length) throw new DatasetError(problems);
  for (const [rel, data] of files) {
    await Deno.mkdir(dirname(join(dest, rel)), { recursive: true });
    await Deno.writeFile(join(dest, rel), data);
  }
  return files.map(([rel]) => rel).sort();
}

/** The entry's path relative to the root ("" for directories), or null when it would escape the root. */
export function safePath(name: string): string | null {
  const parts = name.replaceAll("\\", "/").split("/");
  if (parts[0] === "" && parts.length > 1 || /^[A-Za-z]:$/.test(parts[0])) return null;
  const kept = parts.filter((p) => p !== "" && p !== ".");
  if (kept.includes("..")) return null;
  return name.endsWith("/") ? "" : kept.join("/");
}

function tooBig(limits: ArchiveLimits): Error {
  return new Error(`unpacks to more than ${limits.maxBytes} bytes or ${limits.maxEntries} entries`);
}

function unzip(bytes: Uint8Array, limits: ArchiveLimits): Entry[] {
  let total = 0, count = 0;
  const files = unzipSync(bytes, {
    filter: (f) => {
      total += f.originalSize;
      if (++count > limits.maxEntries || total > limits.maxBytes) throw tooBig(limits);
      return true;
    },
  });
  return Object.entries(files).map(([name, data]) => ({ name, data }));
}

function gunzip(bytes: Uint8Array, maxBytes: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const stream = new Gunzip((chunk) => {
    total += chunk.length;
    if (total > maxBytes) throw new Error(`unpacks to more than ${maxBytes} bytes`);
    chunks.push(chunk);
  });
  const STEP = 1 << 16;
  for (let i = 0; i < bytes.length; i += STEP) {
    stream.push(bytes.subarray(i, i + STEP), i + STEP >= bytes.length);
  }
  const out = new Uint8Array(total);
  chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
  return out;
}

const BLOCK = 512;
const decoder = new TextDecoder();
/** A NUL-terminated header field. */
const text = (b: Uint8Array) => decoder.decode(b.indexOf(0) < 0 ? b : b.subarray(0, b.indexOf(0)));
const octal = (b: Uint8Array) => parseInt(text(b).trim() || "0", 8);

function isTar(bytes: Uint8Array): boolean {
  return bytes.length >= BLOCK && text(bytes.subarray(257, 262)) === "ustar";
}

/** POSIX ustar with GNU long names ('L') and pax path records ('x'); regular files and directories only. */
function untar(bytes: Uint8Array, limits: ArchiveLimits, problems: DatasetProblem[]): Entry[] {
  const entries: Entry[] = [];
  let longName: string | null = null, total = 0;
  for (let off = 0; off + BLOCK <= bytes.length;) {
    const h = bytes.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    const size = octal(h.subarray(124, 136));
    const type = String.fromCharCode(h[156] || 0x30);
    const prefix = text(h.subarray(345, 500));
    const name = longName ?? (prefix ? `${prefix}/${text(h.subarray(0, 100))}` : text(h.subarray(0, 100)));
    const data = bytes.subarray(off + BLOCK, off + BLOCK + size);
    if (data.length < size) throw new Error(`tar entry '${name}' is truncated`);
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    longName = null;
    if (type === "L") longName = text(data);
    else if (type === "x") longName = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(decoder.decode(data))?.[1] ?? null;
    else if (type === "0" || type === "7") {
      total += size;
      if (entries.length >= limits.maxEntries || total > limits.maxBytes) throw tooBig(limits);
      entries.push({ name, data: data.slice() });
    } else if (type !== "5" && type !== "g") {
      problems.push({ file: name, message: `tar entry type '${type}' (link or device) is not accepted` });
    }
  }
  return entries;
}
