/**
 * A minimal ustar writer for archive tests: entries are written as given (type '0' file unless stated), with a
 * right checksum; `sizeField` replaces the size field's text (to write hostile headers).
 */
export function makeTar(
  entries: { name: string; data?: Uint8Array; type?: string; sizeField?: string }[],
): Uint8Array {
  const blocks: Uint8Array[] = [];
  const enc = new TextEncoder();
  for (const e of entries) {
    const data = e.data ?? new Uint8Array();
    const h = new Uint8Array(512);
    h.set(enc.encode(e.name).subarray(0, 100), 0);
    h.set(enc.encode("0000644\0"), 100);
    h.set(enc.encode(e.sizeField ?? data.length.toString(8).padStart(11, "0") + "\0").subarray(0, 12), 124);
    h.set(enc.encode("        "), 148);
    h[156] = (e.type ?? "0").charCodeAt(0);
    h.set(enc.encode("ustar\0" + "00"), 257);
    const sum = h.reduce((a, b) => a + b, 0);
    h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
    blocks.push(h, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((a, b) => a + b.length, 0));
  blocks.reduce((at, b) => (out.set(b, at), at + b.length), 0);
  return out;
}
