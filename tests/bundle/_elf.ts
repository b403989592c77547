/**
 * The start of a 64-bit ELF header, `length` bytes: magic, class, data (1 little-endian, 2 big-endian), ...,
 * e_machine at 18, zeros elsewhere.
 */
export function elfHead(machine: number, littleEndian = true, length = 20): Uint8Array<ArrayBuffer> {
  const head = new Uint8Array(length);
  head.set([0x7f, 0x45, 0x4c, 0x46, 2, littleEndian ? 1 : 2]);
  new DataView(head.buffer).setUint16(18, machine, littleEndian);
  return head;
}

/**
 * Writes an executable `path` that holds only a little-endian ELF header for `machine`: enough for the bundle's
 * CPU checks, and a binary that exec refuses. Returns `path`.
 */
export async function writeFakeElf(path: string, machine: number): Promise<string> {
  await Deno.writeFile(path, elfHead(machine, true, 64), { mode: 0o755 });
  return path;
}
