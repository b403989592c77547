/**
 * Where an archive's entries land while it is unpacked: every entry name is checked (no absolute path, no `..`),
 * files are created only under the destination directory, and the real bytes written (not what a header claims)
 * are counted against the size cap as they arrive. A name the file system refuses (a path through a file, a
 * name too long) becomes a problem of that entry, so a hostile archive gets a 400 listing it, never a 500.
 */
import { dirname, join } from "node:path";
import { DatasetError, type DatasetProblem } from "./problems.ts";

export interface ArchiveLimits {
  /** total bytes of all unpacked files */
  maxBytes: number;
  maxEntries: number;
}

/** Errors of the machine, not of the upload (disk full, I/O failure, descriptors exhausted): these stay 5xx. */
const SERVER_ERRNO = new Set(["ENOSPC", "EDQUOT", "EIO", "EMFILE", "ENFILE", "EROFS", "ENOMEM"]);

/** An open file entry: write its bytes in order, then close. */
export interface EntrySink {
  write(chunk: Uint8Array): void;
  close(): void;
}

/** The unpack was aborted by its caller; what it wrote is removed by the caller. */
export class UnpackCancelled extends Error {
  constructor() {
    super("unpack cancelled");
  }
}

export class UnpackTarget {
  readonly problems: DatasetProblem[] = [];
  private readonly written: string[] = [];
  private bytes = 0;
  private entries = 0;
  /** The entry being written, closed when the next one opens or the unpack ends (also by an error). */
  private current: Deno.FsFile | null = null;

  constructor(
    readonly dest: string,
    readonly limits: ArchiveLimits,
    private readonly cancelled: () => boolean = () => false,
  ) {}

  /** The unpacked files, relative to the destination, sorted. */
  files(): string[] {
    return [...this.written].sort();
  }

  refuse(file: string, message: string): void {
    this.problems.push({ file, message });
  }

  /**
   * Counts one entry and, when it is a file that may be written, opens it. Null when nothing is to be written:
   * a directory entry (its files create it), or a refused name (the problem is recorded). `declaredSize` lets
   * an entry that claims more than the cap leaves stop the unpack before a byte is written; the real bytes are
   * counted by the sink all the same.
   */
  open(name: string, declaredSize = 0): EntrySink | null {
    this.closeCurrent();
    if (this.cancelled()) throw new UnpackCancelled();
    if (++this.entries > this.limits.maxEntries) throw this.tooBig();
    if (declaredSize > this.limits.maxBytes - this.bytes) throw this.tooBig();
    const rel = safePath(name);
    if (rel === null) {
      this.refuse(name, "path leaves the archive root (absolute or '..')");
      return null;
    }
    if (rel === "") return null;
    const path = join(this.dest, rel);
    let file: Deno.FsFile;
    try {
      Deno.mkdirSync(dirname(path), { recursive: true });
      file = Deno.openSync(path, { write: true, create: true, truncate: true });
    } catch (err) {
      if (SERVER_ERRNO.has((err as { code?: string }).code ?? "")) throw err;
      this.refuse(name, `cannot be unpacked: ${(err as Error).message}`);
      return null;
    }
    this.written.push(rel);
    this.current = file;
    return {
      write: (chunk) => {
        if (this.cancelled()) throw new UnpackCancelled();
        this.bytes += chunk.length;
        if (this.bytes > this.limits.maxBytes) throw this.tooBig();
        for (let at = 0; at < chunk.length;) at += file.writeSync(chunk.subarray(at));
      },
      close: () => this.closeCurrent(),
    };
  }

  closeCurrent(): void {
    this.current?.close();
    this.current = null;
  }

  /** The size cap was hit: everything found so far, plus that. */
  tooBig(): DatasetError {
    const { maxBytes, maxEntries } = this.limits;
    return new DatasetError([
      ...this.problems,
      { file: "archive", message: `unpacks to more than ${maxBytes} bytes or ${maxEntries} entries` },
    ]);
  }
}

/** The entry's path relative to the root ("" for directories), or null when it would escape the root. */
export function safePath(name: string): string | null {
  const parts = name.replaceAll("\\", "/").split("/");
  if (parts[0] === "" && parts.length > 1 || /^[A-Za-z]:$/.test(parts[0])) return null;
  const kept = parts.filter((p) => p !== "" && p !== ".");
  if (kept.includes("..")) return null;
  return name.endsWith("/") ? "" : kept.join("/");
}
