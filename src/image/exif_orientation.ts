/**
 * EXIF orientation as cv2.imread and libvips apply it: read from the JPEG's Exif APP1 segment and applied by
 * moving whole pixels (a rotation or mirror changes no value, so the result is the other decoders' bit for bit).
 */

/** Exif's IFD0 tag for the orientation, and the SHORT type it must have. */
const ORIENTATION_TAG = 0x0112;
const TYPE_SHORT = 3;
const APP1 = 0xe1;
const SOS = 0xda;
const EXIF_ID = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"

/**
 * The orientation (1-8; 1 where the file has no Exif segment or no orientation tag) of a JPEG whose marker
 * structure readImageHeader accepted, or null where the Exif data is anything but plain (two Exif segments, a
 * broken TIFF header or IFD, a tag of the wrong type or given twice, a value outside 1-8): what other readers
 * make of such data is theirs to say, so the caller leaves those files to them.
 */
export function jpegOrientation(jpeg: Uint8Array): number | null {
  const view = new DataView(jpeg.buffer, jpeg.byteOffset, jpeg.byteLength);
  let orientation: number | null = 1;
  let exifSegments = 0;
  for (let pos = 2; pos + 4 <= jpeg.length;) {
    const marker = jpeg[pos + 1];
    if (jpeg[pos] !== 0xff) return null;
    if (marker === 0xff) {
      pos++;
      continue;
    }
    if (marker === SOS) break;
    const length = view.getUint16(pos + 2);
    const start = pos + 4;
    const end = pos + 2 + length;
    if (length < 2 || end > jpeg.length) return null;
    if (marker === APP1 && end - start >= EXIF_ID.length && EXIF_ID.every((b, i) => jpeg[start + i] === b)) {
      if (++exifSegments > 1) return null;
      orientation = tiffOrientation(new DataView(jpeg.buffer, jpeg.byteOffset + start + 6, end - start - 6));
    }
    pos = end;
  }
  return orientation;
}

/** IFD0's orientation in a TIFF structure (Exif's payload), 1 when absent, null when malformed. */
function tiffOrientation(tiff: DataView): number | null {
  if (tiff.byteLength < 8) return null;
  const order = tiff.getUint16(0);
  if (order !== 0x4949 && order !== 0x4d4d) return null; // "II" little-endian, "MM" big-endian
  const little = order === 0x4949;
  if (tiff.getUint16(2, little) !== 42) return null;
  const ifd = tiff.getUint32(4, little);
  if (ifd < 8 || ifd + 2 > tiff.byteLength) return null;
  const entries = tiff.getUint16(ifd, little);
  if (ifd + 2 + entries * 12 > tiff.byteLength) return null;
  let orientation: number | null = 1;
  let found = false;
  for (let i = 0; i < entries; i++) {
    const entry = ifd + 2 + i * 12;
    if (tiff.getUint16(entry, little) !== ORIENTATION_TAG) continue;
    if (found) return null; // twice: which one a reader keeps is its own choice
    found = true;
    if (tiff.getUint16(entry + 2, little) !== TYPE_SHORT || tiff.getUint32(entry + 4, little) !== 1) {
      return null;
    }
    const value = tiff.getUint16(entry + 8, little);
    orientation = value >= 1 && value <= 8 ? value : null;
  }
  return orientation;
}

/**
 * `pixels` (width x height RGB, as stored) turned upright for `orientation`: 2-4 mirror or turn it half round,
 * 5-8 swap its width and height.
 */
export function applyOrientation(
  pixels: Uint8Array,
  width: number,
  height: number,
  orientation: number,
): { width: number; height: number; data: Uint8Array } {
  if (orientation === 1) return { width, height, data: pixels };
  const w = width;
  const last = width * height - 1;
  // The source pixel of output (x, y) is origin + x * dx + y * dy, in pixels.
  const [origin, dx, dy] = {
    2: [w - 1, -1, w],
    3: [last, -1, -w],
    4: [last - (w - 1), 1, -w],
    5: [0, w, 1],
    6: [last - (w - 1), -w, 1],
    7: [last, -w, -1],
    8: [w - 1, w, -1],
  }[orientation as 2 | 3 | 4 | 5 | 6 | 7 | 8];
  const turned = orientation >= 5;
  const outW = turned ? height : width;
  const outH = turned ? width : height;
  const out = new Uint8Array(pixels.length);
  let o = 0;
  for (let y = 0; y < outH; y++) {
    let s = origin + y * dy;
    for (let x = 0; x < outW; x++, s += dx, o += 3) {
      const i = s * 3;
      out[o] = pixels[i];
      out[o + 1] = pixels[i + 1];
      out[o + 2] = pixels[i + 2];
    }
  }
  return { width: outW, height: outH, data: out };
}
