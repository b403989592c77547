/**
 * A zip reader over the archive file on disk: the central directory gives the entries' names and where their
 * data starts, and each entry is inflated in small steps straight into its file. The sizes the directory claims
 * for the unpacked data are never trusted: the target counts the bytes inflation really produces and stops at
 * the cap. Stored and deflated entries are read; encrypted ones, other methods and links are refused.
 */
import { Inflate } from "fflate";
import { ArchiveFormatError } from "./archive_format.ts";
import type { UnpackTarget } from "./archive_target.ts";

/** Compressed bytes per inflate step: deflate expands at most ~1032x, so one step makes at most ~4 MB. */
const STEP = 4 * 1024;
/** A central directory larger than this is not a dataset's (100 000 entries with long names is ~20 MB). */
const MAX_DIRECTORY_BYTES = 64 << 20;
const EOCD_SIG = 0x06054b50, EOCD64_SIG = 0x06064b50, LOCATOR_SIG = 0x07064b50;
const CENTRAL_SIG = 0x02014b50, LOCAL_SIG = 0x04034b50;
/** The unix file type bits of an entry's external attributes (made by unix), and the two kinds accepted. */
const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000;
const decoder = new TextDecoder();

interface CentralEntry {
  name: string;
  flags: number;
  method: number;
  compressedSize: number;
  localOffset: number;
  unixType: number | null;
}

export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b;
}

export function unzipFile(file: Deno.FsFile, size: number, target: UnpackTarget): void {
  const { count, offset, length } = findDirectory(file, size);
  if (count > target.limits.maxEntries) throw target.tooBig();
  if (length > MAX_DIRECTORY_BYTES) throw new ArchiveFormatError(`central directory of ${length} bytes`);
  if (offset + length > size) throw new ArchiveFormatError("central directory lies past the end of the file");
  const directory = readAt(file, offset, length);
  for (const entry of centralEntries(directory, count)) {
    const type = entry.unixType === null ? null : entry.unixType & S_IFMT;
    if (entry.flags & 1) target.refuse(entry.name, "encrypted zip entries are not accepted");
    else if (type !== null && type !== 0 && type !== S_IFREG && type !== S_IFDIR) {
      target.refuse(entry.name, "zip entry is a link or device, which is not accepted");
    } else if (entry.method !== 0 && entry.method !== 8) {
      target.refuse(
        entry.name,
        `zip compression method ${entry.method} is not supported (stored or deflate)`,
      );
    } else unpackEntry(file, size, entry, target);
  }
}

function unpackEntry(file: Deno.FsFile, size: number, entry: CentralEntry, target: UnpackTarget): void {
  const local = readAt(file, entry.localOffset, 30);
  const view = new DataView(local.buffer);
  if (local.length < 30 || view.getUint32(0, true) !== LOCAL_SIG) {
    throw new ArchiveFormatError(`zip entry '${entry.name}' has no local header`);
  }
  const start = entry.localOffset + 30 + view.getUint16(26, true) + view.getUint16(28, true);
  const end = start + entry.compressedSize;
  if (end > size) throw new ArchiveFormatError(`zip entry '${entry.name}' is truncated`);
  const sink = target.open(entry.name, entry.method === 0 ? entry.compressedSize : 0);
  if (sink === null) return;
  const inflate = entry.method === 8 ? new Inflate((chunk) => sink.write(chunk)) : null;
  let at = start;
  do {
    const chunk = readAt(file, at, Math.min(STEP, end - at));
    at += chunk.length;
    if (inflate) inflate.push(chunk, at >= end);
    else sink.write(chunk);
    if (chunk.length === 0 && at < end) {
      throw new ArchiveFormatError(`zip entry '${entry.name}' is truncated`);
    }
  } while (at < end);
  sink.close();
}

/** The end-of-central-directory record (zip64 when its fields are saturated): entry count, offset, length. */
function findDirectory(file: Deno.FsFile, size: number): { count: number; offset: number; length: number } {
  const tailLength = Math.min(size, 22 + 0xffff);
  const tail = readAt(file, size - tailLength, tailLength);
  const view = new DataView(tail.buffer);
  let at = tail.length - 22;
  while (at >= 0 && view.getUint32(at, true) !== EOCD_SIG) at--;
  if (at < 0) throw new ArchiveFormatError("zip has no end of central directory (truncated?)");
  let count = view.getUint16(at + 10, true);
  let length = view.getUint32(at + 12, true);
  let offset = view.getUint32(at + 16, true);
  if (count === 0xffff || length === 0xffffffff || offset === 0xffffffff) {
    const locatorAt = size - tailLength + at - 20;
    const locator = locatorAt >= 0 ? readAt(file, locatorAt, 20) : new Uint8Array(0);
    const lv = new DataView(locator.buffer);
    if (locator.length < 20 || lv.getUint32(0, true) !== LOCATOR_SIG) {
      throw new ArchiveFormatError("zip64 end of central directory locator is missing");
    }
    const record = readAt(file, u64(lv, 8), 56);
    const rv = new DataView(record.buffer);
    if (record.length < 56 || rv.getUint32(0, true) !== EOCD64_SIG) {
      throw new ArchiveFormatError("zip64 end of central directory is missing");
    }
    [count, length, offset] = [u64(rv, 32), u64(rv, 40), u64(rv, 48)];
  }
  return { count, offset, length };
}

function* centralEntries(dir: Uint8Array, count: number): Generator<CentralEntry> {
  const view = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > dir.length || view.getUint32(at, true) !== CENTRAL_SIG) {
      throw new ArchiveFormatError(`zip central directory entry ${i} is corrupt`);
    }
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const next = at + 46 + nameLength + extraLength + view.getUint16(at + 32, true);
    if (next > dir.length) throw new ArchiveFormatError(`zip central directory entry ${i} is truncated`);
    const entry: CentralEntry = {
      name: decoder.decode(dir.subarray(at + 46, at + 46 + nameLength)),
      flags: view.getUint16(at + 8, true),
      method: view.getUint16(at + 10, true),
      compressedSize: view.getUint32(at + 20, true),
      localOffset: view.getUint32(at + 42, true),
      unixType: view.getUint8(at + 5) === 3 ? view.getUint32(at + 38, true) >>> 16 : null,
    };
    readZip64Extra(dir.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength), view, at, entry);
    yield entry;
    at = next;
  }
}

/** The zip64 extra field holds, in this order, each of size, compressed size and offset that is saturated. */
function readZip64Extra(extra: Uint8Array, view: DataView, at: number, entry: CentralEntry): void {
  const ev = new DataView(extra.buffer, extra.byteOffset, extra.byteLength);
  for (let i = 0; i + 4 <= extra.length;) {
    const [id, length] = [ev.getUint16(i, true), ev.getUint16(i + 2, true)];
    if (id === 0x0001) {
      let field = i + 4;
      const next = () => {
        if (field + 8 > i + 4 + length || field + 8 > extra.length) {
          throw new ArchiveFormatError(`zip64 extra field of '${entry.name}' is short`);
        }
        return u64(ev, (field += 8) - 8);
      };
      if (view.getUint32(at + 24, true) === 0xffffffff) next();
      if (entry.compressedSize === 0xffffffff) entry.compressedSize = next();
      if (entry.localOffset === 0xffffffff) entry.localOffset = next();
      return;
    }
    i += 4 + length;
  }
}

function u64(view: DataView, at: number): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ArchiveFormatError("zip64 field overflows");
  return Number(value);
}

/** Up to `length` bytes at `offset` (fewer at the end of the file). */
export function readAt(file: Deno.FsFile, offset: number, length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.max(0, length));
  file.seekSync(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < out.length) {
    const n = file.readSync(out.subarray(got));
    if (n === null || n === 0) break;
    got += n;
  }
  return out.subarray(0, got);
}
