// Differential fuzz target (tests/_helpers/fuzz.ts): JPEGs with mutated bytes, mostly in their headers (the
// Exif orientation, tables, frame and scan headers), decoded with libturbojpeg (the fast path) and with sharp
// alone (the decoder without libturbojpeg, as before it). Both must give the same pixels or the same ImageError.
import sharp from "sharp";
import { mutate } from "../_helpers/fuzz.ts";
import { mulberry32 } from "../_helpers/random.ts";
import { createImageDecoder } from "../../src/image/decode.ts";
import { ImageError } from "../../src/image/errors.ts";

const MAX_PIXELS = 1 << 20;
// Up to the first scan, Exif included.
const HEADER_BYTES = 400;

const fast = createImageDecoder();
const sharpOnly = createImageDecoder("/nonexistent/libturbojpeg.so.0");
const pixels = Uint8Array.from({ length: 21 * 14 * 3 }, (_, i) => (i * 37 + (i >> 5)) % 256);
const base = () => sharp(pixels, { raw: { width: 21, height: 14, channels: 3 } });
const INPUTS = await Promise.all([
  base().withMetadata({ orientation: 6 }).jpeg().toBuffer(),
  base().withMetadata({ orientation: 3 }).jpeg({ progressive: true, chromaSubsampling: "4:4:4" }).toBuffer(),
  base().toColourspace("b-w").jpeg().toBuffer(),
  Deno.readFile(new URL("../fixtures/jpeg/420_restart_rows.jpg", import.meta.url)),
]).then((buffers) => buffers.map((b) => new Uint8Array(b)));

type Outcome = { pixels: Uint8Array; width: number; height: number } | ImageError;

async function outcome(decode: Promise<Outcome>): Promise<Outcome> {
  try {
    return await decode;
  } catch (err) {
    if (err instanceof ImageError) return err;
    throw err;
  }
}

export async function fuzzCase(seed: number): Promise<string> {
  const rand = mulberry32(seed);
  const bytes = mutate(INPUTS[Math.floor(rand() * INPUTS.length)], rand, HEADER_BYTES);
  const [got, want] = [
    await outcome(fast.decode(bytes, MAX_PIXELS).then((i) => ({ pixels: i.data, ...i }))),
    await outcome(sharpOnly.decode(bytes, MAX_PIXELS).then((i) => ({ pixels: i.data, ...i }))),
  ];
  if (want instanceof ImageError || got instanceof ImageError) {
    if (!(want instanceof ImageError && got instanceof ImageError && got.message === want.message)) {
      throw new Error(`fast path: ${describe(got)}; sharp: ${describe(want)}`);
    }
    return want.kind;
  }
  if (got.width !== want.width || got.height !== want.height) {
    throw new Error(`fast path: ${describe(got)}; sharp: ${describe(want)}`);
  }
  const differing = got.pixels.findIndex((v, i) => v !== want.pixels[i]);
  if (differing >= 0) {
    throw new Error(`byte ${differing}: fast path ${got.pixels[differing]}, sharp ${want.pixels[differing]}`);
  }
  return "same pixels";
}

function describe(o: Outcome): string {
  return o instanceof ImageError ? `${o.kind} (${o.message})` : `${o.width}x${o.height} image`;
}
