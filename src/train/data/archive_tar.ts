/**
 * A streaming ustar reader: bytes are pushed in as they arrive (from the file or from gunzip) and file entries
 * are written through an {@link UnpackTarget} without holding an entry in memory. Headers are parsed strictly
 * (checksum, `ustar` magic, octal digits or base-256 in numeric fields), and every header consumes its 512
 * bytes plus a size that cannot be negative, so each push ends: a hostile header can be refused, never loop.
 * GNU long names ('L') and pax `path`/`size` records ('x') are honoured; links and devices are refused.
 */
import { ArchiveFormatError } from "./archive_format.ts";
import type { EntrySink, UnpackTarget } from "./archive_target.ts";

const BLOCK = 512;
/** Largest long-name or pax record accepted: real ones are a few hundred bytes. */
const MAX_META_BYTES = 1 << 16;
const FILE_TYPES = new Set(["0", "\0", "7"]);
/** Metadata entries whose data is read (and bounded) rather than written out. */
const META_TYPES = new Set(["L", "K", "x", "g"]);
const decoder = new TextDecoder();

/** What the entry the data belongs to does with it. */
type Data =
  | { kind: "file"; sink: EntrySink | null }
  | { kind: "meta"; type: string; chunks: Uint8Array[] }
  | {
    kind: "skip";
  };

export class TarReader {
  private readonly header = new Uint8Array(BLOCK);
  private headerBytes = 0;
  /** data bytes left in the current entry, then the padding to the next block */
  private remaining = 0;
  private padding = 0;
  private data: Data = { kind: "skip" };
  /** offset of the next header in the tar stream, for error messages */
  private offset = 0;
  private ended = false;
  private longName: string | null = null;
  private paxSize: number | null = null;

  constructor(private readonly target: UnpackTarget) {}

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length && !this.ended) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - at);
        this.take(chunk.subarray(at, at + n));
        this.remaining -= n;
        at += n;
        if (this.remaining === 0) this.endEntry();
      } else if (this.padding > 0) {
        const n = Math.min(this.padding, chunk.length - at);
        this.padding -= n;
        at += n;
      } else {
        const n = Math.min(BLOCK - this.headerBytes, chunk.length - at);
        this.header.set(chunk.subarray(at, at + n), this.headerBytes);
        this.headerBytes += n;
        at += n;
        if (this.headerBytes === BLOCK) {
          this.headerBytes = 0;
          this.startEntry();
          this.offset += BLOCK + this.remaining + this.padding;
        }
      }
    }
  }

  /** The stream ended: it must end between entries (the two zero blocks may be missing, as GNU tar allows). */
  finish(): void {
    if (this.remaining > 0 || this.headerBytes > 0 || this.longName !== null || this.paxSize !== null) {
      throw new ArchiveFormatError("tar stream is truncated");
    }
  }

  private take(bytes: Uint8Array): void {
    if (this.data.kind === "file") this.data.sink?.write(bytes);
    else if (this.data.kind === "meta") this.data.chunks.push(bytes.slice());
  }

  private startEntry(): void {
    const h = this.header;
    if (h.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    const at = `tar header at byte ${this.offset}`;
    if (text(h.subarray(257, 262)) !== "ustar") throw new ArchiveFormatError(`${at} has no ustar magic`);
    const checksum = octal(h.subarray(148, 156), `${at}: checksum`);
    if (!checksumMatches(h, checksum)) throw new ArchiveFormatError(`${at} has a wrong checksum`);
    const type = String.fromCharCode(h[156]);
    const headerSize = numeric(h.subarray(124, 136), `${at}: size`);
    const size = META_TYPES.has(type) ? headerSize : this.paxSize ?? headerSize;
    const prefix = text(h.subarray(345, 500));
    const name = this.longName ??
      (prefix ? `${prefix}/${text(h.subarray(0, 100))}` : text(h.subarray(0, 100)));
    if (!META_TYPES.has(type)) [this.longName, this.paxSize] = [null, null];
    this.remaining = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (META_TYPES.has(type)) {
      if (size > MAX_META_BYTES) throw new ArchiveFormatError(`${at}: '${type}' record of ${size} bytes`);
      this.data = { kind: "meta", type, chunks: [] };
    } else if (FILE_TYPES.has(type)) {
      this.data = { kind: "file", sink: this.target.open(name, size) };
    } else {
      // Directories are created by the files in them; anything else is a link or a device.
      if (type !== "5") this.target.refuse(name, `tar entry type '${type}' (link or device) is not accepted`);
      this.data = { kind: "skip" };
    }
    if (size === 0) this.endEntry();
  }

  private endEntry(): void {
    const data = this.data;
    this.data = { kind: "skip" };
    if (data.kind === "file") data.sink?.close();
    if (data.kind !== "meta") return;
    const bytes = new Uint8Array(data.chunks.reduce((n, c) => n + c.length, 0));
    data.chunks.reduce((at, c) => (bytes.set(c, at), at + c.length), 0);
    if (data.type === "L") this.longName = text(bytes);
    else if (data.type === "x") this.readPax(bytes);
  }

  /** pax extended header records, `<length> <key>=<value>\n`; `path` and `size` apply to the next entry. */
  private readPax(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length;) {
      const space = bytes.indexOf(0x20, at);
      const lengthText = space < 0 ? "" : decoder.decode(bytes.subarray(at, space));
      const length = /^[0-9]{1,7}$/.test(lengthText) ? Number(lengthText) : 0;
      if (length <= space - at + 1 || at + length > bytes.length || bytes[at + length - 1] !== 0x0a) {
        throw new ArchiveFormatError("malformed pax record");
      }
      const record = decoder.decode(bytes.subarray(space + 1, at + length - 1));
      const eq = record.indexOf("=");
      const [key, value] = [record.slice(0, eq), record.slice(eq + 1)];
      if (key === "path") this.longName = value;
      if (key === "size") {
        if (!/^[0-9]{1,15}$/.test(value)) throw new ArchiveFormatError(`pax size '${value}' is not a size`);
        this.paxSize = Number(value);
      }
      at += length;
    }
  }
}

/** Whether a stream starts with a ustar header. */
export function looksLikeTar(head: Uint8Array): boolean {
  return head.length >= BLOCK && text(head.subarray(257, 262)) === "ustar";
}

/** A NUL-terminated header field. */
function text(b: Uint8Array): string {
  const end = b.indexOf(0);
  return decoder.decode(end < 0 ? b : b.subarray(0, end));
}

/**
 * A numeric header field: octal digits (optionally space-padded, ended by NUL or space), or GNU base-256 for
 * large values (top bit set). Negative base-256 values and anything else are refused.
 */
function numeric(b: Uint8Array, what: string): number {
  if (b[0] & 0x80) {
    if (b[0] !== 0x80) throw new ArchiveFormatError(`${what} is a negative base-256 number`);
    let value = 0;
    for (const byte of b.subarray(1)) value = value * 256 + byte;
    if (!Number.isSafeInteger(value)) throw new ArchiveFormatError(`${what} overflows`);
    return value;
  }
  return octal(b, what);
}

function octal(b: Uint8Array, what: string): number {
  const field = String.fromCharCode(...b);
  const match = /^ *([0-7]+)[ \0]*$/.exec(field);
  if (!match) throw new ArchiveFormatError(`${what} '${field.replaceAll("\0", "")}' is not an octal number`);
  return parseInt(match[1], 8);
}

/** The header's checksum: its bytes summed with the checksum field as spaces (unsigned, or signed as old tars). */
function checksumMatches(h: Uint8Array, expected: number): boolean {
  let unsigned = 0, signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return expected === unsigned || expected === signed;
}
