/**
 * Decompression bombs for tests, built without ever holding what they unpack to: deflate output for one MiB of
 * zeros after a sync flush is byte-aligned and decodes the same wherever the previous 32 KiB were zeros, so it
 * is repeated instead of compressing gigabytes (1 GiB of zeros costs ~1 MB).
 */
import { Deflate, deflateSync } from "fflate";
import { makeTar } from "./_tar.ts";

const MIB = 1 << 20;

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/** Raw deflate of `prefix` followed by `mib` MiB of zeros and then `suffix`. */
function deflateZeros(prefix: Uint8Array, mib: number, suffix: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const deflate = new Deflate({ level: 1 }, (chunk) => parts.push(chunk));
  deflate.push(prefix);
  deflate.push(new Uint8Array(MIB));
  deflate.flush(true);
  const head = concat(parts.splice(0));
  deflate.push(new Uint8Array(MIB));
  deflate.flush(true);
  const zerosMib = concat(parts.splice(0));
  deflate.push(suffix, true);
  return [head, ...Array(mib - 1).fill(zerosMib), concat(parts)];
}

/**
 * A .tar.gz holding one file `name` of `mib` MiB of zeros (the gzip trailer's CRC is not computed: readers that
 * stream, as the server's does, do not check it).
 */
export function zerosTarGz(name: string, mib: number): Uint8Array<ArrayBuffer> {
  const tar = makeTar([{ name, data: new Uint8Array(0) }]);
  const header = tar.subarray(0, 512);
  header.set(new TextEncoder().encode((mib * MIB).toString(8).padStart(11, "0") + "\0"), 124);
  header.set(new TextEncoder().encode("        "), 148);
  const sum = header.reduce((a, b) => a + b, 0);
  header.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  const gzipHeader = new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
  return concat([gzipHeader, ...deflateZeros(header, mib, new Uint8Array(1024)), new Uint8Array(8)]);
}

/** `mib` MiB of zeros, raw-deflated (for zip entries). */
export function deflatedZeros(mib: number): Uint8Array<ArrayBuffer> {
  return mib === 0
    ? deflateSync(new Uint8Array(0))
    : concat(deflateZeros(new Uint8Array(0), mib, new Uint8Array(0)));
}
