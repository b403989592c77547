import { ImageError } from "./errors.ts";

/** What the container header says, read without decoding a pixel (so bombs are refused before any allocation). */
export interface ImageHeader {
  format: "jpeg" | "png" | "webp";
  /** Stored size, before EXIF orientation is applied. */
  width: number;
  height: number;
}

const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);
// Length field (2), precision (1), height (2), width (2), component count (1).
const SOF_MIN_LENGTH = 8;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Reads format and size; throws ImageError for unknown formats and for truncated files. */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return readJpeg(bytes, view);
  }
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return readPng(bytes, view);
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") {
    return readWebp(bytes, view);
  }
  throw new ImageError(
    "unsupported_media_type",
    "Image is not a JPEG, PNG or WebP file (unrecognised signature)",
  );
}

function ascii(bytes: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + n));
}

function truncated(format: string): ImageError {
  return new ImageError("undecodable_image", `${format} data is truncated or corrupt`);
}

function readJpeg(bytes: Uint8Array, view: DataView): ImageHeader {
  let pos = 2;
  let width = 0;
  let height = 0;
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) throw truncated("JPEG");
    const marker = bytes[pos + 1];
    if (marker === 0xff) {
      pos++;
      continue;
    }
    const length = view.getUint16(pos + 2);
    // The length counts its own two bytes; a frame header holds precision, height and width after it.
    const least = JPEG_SOF.has(marker) ? SOF_MIN_LENGTH : 2;
    if (length < least || pos + 2 + length > bytes.length) throw truncated("JPEG");
    if (JPEG_SOF.has(marker)) {
      height = view.getUint16(pos + 5);
      width = view.getUint16(pos + 7);
    } else if (marker === 0xda) {
      if (!width || !height) {
        throw new ImageError("undecodable_image", "JPEG has no frame size before its scan");
      }
      // Entropy-coded data never contains FF D9 (FF is byte-stuffed), so a missing EOI after the first scan
      // means the upload was cut short; decoders would otherwise fill the rest with grey silently.
      if (!hasEndMarker(bytes, pos)) throw truncated("JPEG");
      return { format: "jpeg", width, height };
    }
    pos += 2 + length;
  }
  throw truncated("JPEG");
}

function hasEndMarker(bytes: Uint8Array, after: number): boolean {
  for (let i = bytes.length - 2; i > after; i--) {
    if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return true;
  }
  return false;
}

function readPng(bytes: Uint8Array, view: DataView): ImageHeader {
  if (bytes.length < 33 || ascii(bytes, 12, 4) !== "IHDR") throw truncated("PNG");
  const header: ImageHeader = {
    format: "png",
    width: view.getUint32(16),
    height: view.getUint32(20),
  };
  // Walk the chunk lengths to IEND: cheap, and it catches uploads cut short.
  let pos = 8;
  while (pos + 12 <= bytes.length) {
    const length = view.getUint32(pos);
    if (ascii(bytes, pos + 4, 4) === "IEND") return header;
    pos += 12 + length;
  }
  throw truncated("PNG");
}

function readWebp(bytes: Uint8Array, view: DataView): ImageHeader {
  if (view.getUint32(4, true) + 8 > bytes.length || bytes.length < 31) throw truncated("WebP");
  const chunk = ascii(bytes, 12, 4);
  let width: number;
  let height: number;
  if (chunk === "VP8X") {
    width = 1 + (view.getUint32(24, true) & 0xffffff);
    height = 1 + (view.getUint32(27, true) & 0xffffff);
  } else if (chunk === "VP8 ") {
    width = view.getUint16(26, true) & 0x3fff;
    height = view.getUint16(28, true) & 0x3fff;
  } else if (chunk === "VP8L") {
    const bits = view.getUint32(21, true);
    width = 1 + (bits & 0x3fff);
    height = 1 + ((bits >> 14) & 0x3fff);
  } else {
    throw new ImageError("undecodable_image", `WebP has an unknown first chunk '${chunk}'`);
  }
  return { format: "webp", width, height };
}
