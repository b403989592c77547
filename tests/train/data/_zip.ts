/**
 * A minimal zip writer for archive tests that, unlike fflate's zipSync, writes whatever sizes and attributes it
 * is told: entries may declare an unpacked size that is a lie, share one compressed stream, or be links.
 */
export interface ZipEntry {
  name: string;
  /** the entry's data as stored in the archive (already deflated when `method` is 8) */
  data: Uint8Array;
  method?: 0 | 8;
  /** the unpacked size the headers claim (default: data.length, right for stored entries) */
  declaredSize?: number;
  /** unix mode bits for the external attributes (e.g. 0o120777 for a symlink); none: made by MS-DOS */
  unixMode?: number;
}

export function makeZip(entries: ZipEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const size = e.declaredSize ?? e.data.length;
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, e.method ?? 0, true);
    lv.setUint32(18, e.data.length, true);
    lv.setUint32(22, size, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const dir = new Uint8Array(46 + name.length);
    const dv = new DataView(dir.buffer);
    dv.setUint32(0, 0x02014b50, true);
    dv.setUint16(4, e.unixMode === undefined ? 20 : (3 << 8) | 20, true);
    dv.setUint16(6, 20, true);
    dv.setUint16(10, e.method ?? 0, true);
    dv.setUint32(20, e.data.length, true);
    dv.setUint32(24, size, true);
    dv.setUint16(28, name.length, true);
    dv.setUint32(38, ((e.unixMode ?? 0) << 16) >>> 0, true);
    dv.setUint32(42, offset, true);
    dir.set(name, 46);
    parts.push(local, e.data);
    central.push(dir);
    offset += local.length + e.data.length;
  }
  const dirLength = central.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, dirLength, true);
  ev.setUint32(16, offset, true);
  const all = [...parts, ...central, end];
  const out = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
  all.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}
