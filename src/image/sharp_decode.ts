import sharp from "sharp";

/**
 * Decodes a JPEG, PNG or WebP with sharp (libvips) into RGB like cv2.imread(IMREAD_COLOR): EXIF orientation
 * applied, alpha dropped, grey widened, 16-bit narrowed, CMYK converted, and no ICC colour conversion of RGB
 * (OpenCV ignores embedded profiles; converting moved bus.jpg's confidences by up to 0.04). Throws the decoder's
 * error for corrupt or truncated data; the caller has checked the size against `maxPixels` from the header.
 */
export async function sharpDecode(
  bytes: Uint8Array,
  maxPixels: number,
): Promise<{ width: number; height: number; data: Uint8Array }> {
  const { data, info } = await sharp(bytes, {
    autoOrient: true,
    limitInputPixels: maxPixels, // a second guard, should a header lie about the size
    failOn: "truncated",
    sequentialRead: true,
  })
    .removeAlpha()
    .toColourspace("srgb")
    .keepIccProfile()
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoder produced ${info.channels} channels, expected 3`);
  return {
    width: info.width,
    height: info.height,
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
  };
}
