import sharp from "sharp";

/**
 * A large noisy photo-sized JPEG: its decode takes long enough that a burst of detects piles up behind it (the
 * load shedding tests, which need requests queued at once).
 */
export async function bigJpeg(): Promise<Uint8Array<ArrayBuffer>> {
  const width = 2400, height = 1800;
  const noise = new Uint8Array(width * height * 3).map((_, i) => (i * 2654435761) >>> 24);
  return new Uint8Array(await sharp(noise, { raw: { width, height, channels: 3 } }).jpeg().toBuffer());
}
