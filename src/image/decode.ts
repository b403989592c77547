import { ImageError } from "./errors.ts";
import { applyOrientation, jpegOrientation } from "./exif_orientation.ts";
import { type ImageHeader, readImageHeader } from "./header.ts";
import { sharpDecode } from "./sharp_decode.ts";
import { openTurboJpeg, TJCS, TurboJpeg, TURBOJPEG_SONAME } from "./turbojpeg.ts";

/** An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC), as OpenCV's imread gives it (but RGB). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Largest image accepted by default: 8K x 5K. Anything larger is almost surely a decompression bomb. */
export const DEFAULT_MAX_PIXELS = 40_000_000;

/** Where libturbojpeg is loaded from unless told: KESTREL_TURBOJPEG_LIB (a bundle's own copy) or the soname. */
export const TURBOJPEG_LIB_ENV = "KESTREL_TURBOJPEG_LIB";

/** Turns image files into RgbImages, and says which decoder its JPEGs get. */
export interface ImageDecoder {
  /** `turbojpeg (PATH)`, or `sharp (why libturbojpeg is not used)`: for the doctor, the log and /v1/server. */
  readonly jpegDecoder: string;
  decode(bytes: Uint8Array, maxPixels?: number): Promise<RgbImage>;
}

/**
 * JPEGs in the YCbCr or grey colour space go to libturbojpeg (src/image/turbojpeg.ts) where it loads: the same
 * libjpeg-turbo decode as sharp's, bit for bit, without libvips' pipeline around it (bench jpeg_decode: ~6.3
 * CPU-ms against ~9.8 for bus.jpg on the shared box). Everything else goes to sharp, as do JPEGs TurboJPEG refuses or warns about
 * (sharp's verdict and error are then the ones they always were), CMYK/YCCK and RGB-coded JPEGs (libvips
 * converts or tags those its own way) and any whose Exif orientation is not plain.
 */
export function createImageDecoder(turbojpegPath: string = TURBOJPEG_SONAME): ImageDecoder {
  const opened = openTurboJpeg(turbojpegPath);
  const turbo = opened instanceof TurboJpeg ? opened : null;
  return {
    jpegDecoder: opened instanceof TurboJpeg
      ? `turbojpeg (${opened.path})`
      : `sharp (libturbojpeg not loaded: ${opened.missing})`,
    async decode(bytes, maxPixels = DEFAULT_MAX_PIXELS) {
      const header = readImageHeader(bytes);
      const pixels = header.width * header.height;
      if (pixels > maxPixels) {
        throw new ImageError(
          "image_too_large",
          `Image is ${header.width}x${header.height} = ${pixels} pixels, over the limit of ${maxPixels}`,
        );
      }
      if (pixels === 0) throw new ImageError("undecodable_image", "Image has zero width or height");
      const decoded = turbo && header.format === "jpeg" ? await turboJpegDecode(turbo, bytes, header) : null;
      if (decoded) return decoded;
      try {
        return await sharpDecode(bytes, maxPixels);
      } catch (err) {
        throw new ImageError(
          "undecodable_image",
          `Cannot decode ${header.format}: ${(err as Error).message}`,
        );
      }
    },
  };
}

/** The JPEG decoded by TurboJPEG and turned upright, or null where it is sharp's to decode. */
export async function turboJpegDecode(
  turbo: TurboJpeg,
  jpeg: Uint8Array,
  header: ImageHeader,
): Promise<RgbImage | null> {
  const frame = turbo.header(jpeg);
  // The size must be the one the pixel limit was checked against.
  if (!frame || frame.width !== header.width || frame.height !== header.height) return null;
  if (frame.colorspace !== TJCS.ycbcr && frame.colorspace !== TJCS.gray) return null;
  const orientation = jpegOrientation(jpeg);
  if (orientation === null) return null;
  const pixels = await turbo.decodeRgb(jpeg, frame.width, frame.height);
  return pixels && applyOrientation(pixels, frame.width, frame.height, orientation);
}

let defaultDecoder: ImageDecoder | undefined;

/** The process's decoder, made at first use: libturbojpeg from KESTREL_TURBOJPEG_LIB or the system's. */
export function defaultImageDecoder(): ImageDecoder {
  defaultDecoder ??= createImageDecoder(Deno.env.get(TURBOJPEG_LIB_ENV) || TURBOJPEG_SONAME);
  return defaultDecoder;
}

/**
 * Decodes a JPEG, PNG or WebP into RGB like cv2.imread(IMREAD_COLOR) (see sharpDecode), with the process's
 * decoder. The header is read first, so a bomb costs no allocation.
 */
export function decodeImage(bytes: Uint8Array, maxPixels = DEFAULT_MAX_PIXELS): Promise<RgbImage> {
  return defaultImageDecoder().decode(bytes, maxPixels);
}
