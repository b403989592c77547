/**
 * What a file is as native code, read from its first bytes: an ELF object names its CPU in e_machine; Mach-O and
 * PE files are another OS's binaries. Everything else (scripts, wasm, data) is "none".
 */
export type NativeKind =
  | { kind: "elf"; machine: number }
  | { kind: "macho" }
  | { kind: "pe" }
  | { kind: "none" };

/** e_machine values a bundle report names. */
export const ELF_MACHINE_NAMES: Record<number, string> = {
  62: "x86-64",
  183: "aarch64",
  40: "arm",
  3: "x86",
};

const MACHO_MAGICS = new Set([0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe]);
/** A universal (fat) Mach-O; Java class files share its magic but hold their version (>= 45) where it counts CPUs. */
const FAT_MACHO_MAGIC = 0xcafebabe;
/** More CPU slices than any universal binary carries, fewer than the first Java class version (45). */
const MAX_FAT_ARCHS = 30;

export function nativeKind(head: Uint8Array): NativeKind {
  if (head.length >= 20 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) {
    // EI_DATA (byte 5) is 1 for little-endian; e_machine is the 16-bit field at offset 18.
    return { kind: "elf", machine: new DataView(head.buffer, head.byteOffset).getUint16(18, head[5] === 1) };
  }
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length >= 4 && MACHO_MAGICS.has(view.getUint32(0))) return { kind: "macho" };
  if (head.length >= 8 && view.getUint32(0) === FAT_MACHO_MAGIC && view.getUint32(4) < MAX_FAT_ARCHS) {
    return { kind: "macho" };
  }
  if (head.length >= 2 && head[0] === 0x4d && head[1] === 0x5a) return { kind: "pe" };
  return { kind: "none" };
}

/** Reads just enough of a file for nativeKind. */
export async function fileNativeKind(path: string): Promise<NativeKind> {
  using file = await Deno.open(path);
  const head = new Uint8Array(20);
  let filled = 0;
  while (filled < head.length) {
    const n = await file.read(head.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return nativeKind(head.subarray(0, filled));
}
