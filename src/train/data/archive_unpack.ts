/**
 * Unpacks an archive file into a directory, synchronously and from disk to disk with bounded memory: the format
 * is recognised by its magic bytes (.zip, gzip-compressed tar, plain tar), read in small steps and written entry
 * by entry. This is the body of the unpack worker (archive_worker.ts); call {@link extractArchive} instead, which
 * keeps the event loop free while it runs.
 */
import { Gunzip } from "fflate";
import { ArchiveFormatError } from "./archive_format.ts";
import { type ArchiveLimits, UnpackTarget } from "./archive_target.ts";
import { looksLikeTar, TarReader } from "./archive_tar.ts";
import { looksLikeZip, readAt, unzipFile } from "./archive_zip.ts";
import { DatasetError } from "./problems.ts";

/** Compressed bytes per gunzip step: at most ~4 MB inflated at once (deflate expands at most ~1032x). */
const STEP = 4 * 1024;
/**
 * Compressed bytes gunzip may take in without producing a byte. fflate keeps (and re-copies on every push) the
 * input of a gzip header it has not seen the end of, so an endless header would be held whole and take quadratic
 * time; real streams produce output at least every stored block (64 KiB) or Huffman table.
 */
const MAX_SILENT_INPUT = 1 << 20;

/**
 * Unpacks `archive` under `dest`; returns the written paths relative to `dest`, sorted. Throws DatasetError, or
 * UnpackCancelled once `cancelled()` says so (checked at every entry and every write).
 */
export function unpackArchiveFile(
  archive: string,
  dest: string,
  limits: ArchiveLimits,
  cancelled: () => boolean = () => false,
): string[] {
  const target = new UnpackTarget(dest, limits, cancelled);
  using file = Deno.openSync(archive);
  const size = file.statSync().size;
  try {
    const head = readAt(file, 0, 512);
    if (looksLikeZip(head)) unzipFile(file, size, target);
    else if (head[0] === 0x1f && head[1] === 0x8b) {
      const tar = new TarReader(target);
      let silent = 0;
      const gunzip = new Gunzip((chunk) => {
        if (chunk.length) silent = 0;
        tar.push(chunk);
      });
      streamFile(file, size, {
        push: (chunk, final) => {
          gunzip.push(chunk, final);
          silent += chunk.length;
          if (silent > MAX_SILENT_INPUT) {
            throw new ArchiveFormatError(`gzip stream gives no data for ${MAX_SILENT_INPUT} bytes`);
          }
        },
      });
      tar.finish();
    } else if (looksLikeTar(head)) {
      const tar = new TarReader(target);
      streamFile(file, size, { push: (chunk) => tar.push(chunk) });
      tar.finish();
    } else target.refuse("archive", "not a .zip, .tar.gz or .tar archive");
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    // fflate reports corrupt deflate data with a numeric code; the file system's errors have string codes.
    if (!(err instanceof ArchiveFormatError) && typeof (err as { code?: unknown }).code !== "number") {
      throw err;
    }
    target.refuse("archive", `unreadable archive: ${(err as Error).message}`);
  } finally {
    target.closeCurrent();
  }
  if (target.problems.length) throw new DatasetError(target.problems);
  return target.files();
}

function streamFile(
  file: Deno.FsFile,
  size: number,
  sink: { push(chunk: Uint8Array, final?: boolean): void },
): void {
  let at = 0;
  do {
    const chunk = readAt(file, at, Math.min(STEP, size - at));
    at += chunk.length;
    sink.push(chunk, at >= size || chunk.length === 0);
    if (chunk.length === 0) break;
  } while (at < size);
}
