// Fuzz target (tests/_helpers/fuzz.ts): small JPEG, PNG and WebP files (lossy and lossless) with mutated bytes,
// mostly in their headers, through readImageHeader and decodeImage as the detect route and the dataset loader
// call them. A valid result is an image whose pixel buffer matches its size; a refusal is an ImageError, which
// the API maps to 415, 422 or 413.
import sharp from "sharp";
import { isEngineError } from "../_helpers/engine_error.ts";
import { mutate } from "../_helpers/fuzz.ts";
import { mulberry32 } from "../_helpers/random.ts";
import { decodeImage } from "../../src/image/decode.ts";
import { ImageError } from "../../src/image/errors.ts";
import { readImageHeader } from "../../src/image/header.ts";

// Small enough that a mutated size field usually passes the pixel limit and reaches the decoder.
const MAX_PIXELS = 1 << 20;
// Where the structure lives: JPEG markers up to the first scan, PNG's IHDR, WebP's RIFF and VP8 headers.
const HEADER_BYTES = 200;

const pixels = Uint8Array.from({ length: 12 * 9 * 3 }, (_, i) => (i * 37) % 256);
const base = () => sharp(pixels, { raw: { width: 12, height: 9, channels: 3 } });
const INPUTS = await Promise.all([
  base().jpeg().toBuffer(),
  base().jpeg({ progressive: true }).toBuffer(),
  base().png().toBuffer(),
  base().webp().toBuffer(),
  base().webp({ lossless: true }).toBuffer(),
  base().ensureAlpha(0.5).webp().toBuffer(),
]).then((buffers) => buffers.map((b) => new Uint8Array(b)));

export async function fuzzCase(seed: number): Promise<string> {
  const rand = mulberry32(seed);
  const input = INPUTS[Math.floor(rand() * INPUTS.length)];
  const bytes = mutate(input, rand, HEADER_BYTES);
  try {
    readImageHeader(bytes);
  } catch (err) {
    if (!(err instanceof ImageError) || isEngineError(err)) throw err;
  }
  try {
    const image = await decodeImage(bytes, MAX_PIXELS);
    if (image.data.length !== image.width * image.height * 3) {
      throw new Error(`decoded ${image.width}x${image.height} with ${image.data.length} bytes`);
    }
    return "decoded";
  } catch (err) {
    if (err instanceof ImageError) return err.kind;
    throw err;
  }
}
