import assert from "node:assert/strict";
import sharp from "sharp";
import { decodeImage } from "../../src/image/decode.ts";
import { ImageError } from "../../src/image/errors.ts";
import { readImageHeader } from "../../src/image/header.ts";

/** A w x h RGB image whose left half is `left` and right half `right`. */
function halves(w: number, h: number, left: number[], right: number[]): Uint8Array {
  const data = new Uint8Array(w * h * 3);
  for (let p = 0; p < w * h; p++) data.set(p % w < w / 2 ? left : right, p * 3);
  return data;
}

/** w x h RGB noise from a fixed-seed LCG: compresses like a photo (tens of kB), unlike flat colour. */
function noise(w: number, h: number): Uint8Array {
  const data = new Uint8Array(w * h * 3);
  let state = 12345;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state >>> 24;
  }
  return data;
}

const raw = (data: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4) =>
  sharp(data, { raw: { width, height, channels } });

/** A portrait photo-like JPEG (the size of its header check is this one). */
const PHOTO = { width: 120, height: 160 };
const JPEG = new Uint8Array(
  await raw(noise(PHOTO.width, PHOTO.height), PHOTO.width, PHOTO.height, 3).jpeg().toBuffer(),
);

async function rejects(promise: Promise<unknown>, kind: ImageError["kind"]): Promise<void> {
  await assert.rejects(promise, (err) => err instanceof ImageError && err.kind === kind);
}

Deno.test("readImageHeader() reads format and size without decoding", async () => {
  assert.deepEqual(readImageHeader(JPEG), { format: "jpeg", ...PHOTO });
  const img = raw(halves(6, 4, [255, 0, 0], [0, 0, 255]), 6, 4, 3);
  const png = readImageHeader(await img.clone().png().toBuffer());
  assert.deepEqual([png.format, png.width, png.height], ["png", 6, 4]);
  for (const options of [{}, { lossless: true }]) {
    const webp = readImageHeader(await img.clone().webp(options).toBuffer());
    assert.deepEqual([webp.format, webp.width, webp.height], ["webp", 6, 4]);
  }
  const withAlpha = readImageHeader(await img.clone().ensureAlpha(0.5).webp().toBuffer());
  assert.deepEqual([withAlpha.width, withAlpha.height], [6, 4]);
});

Deno.test("decodeImage() applies EXIF orientation like cv2.imread", async () => {
  // Orientation 6 = rotate 90° clockwise to display: the stored left half (red) ends up on top.
  const jpeg = await raw(halves(16, 8, [255, 0, 0], [0, 0, 255]), 16, 8, 3)
    .withMetadata({ orientation: 6 }).jpeg({ quality: 100 }).toBuffer();
  assert.deepEqual([readImageHeader(jpeg).width, readImageHeader(jpeg).height], [16, 8], "stored unrotated");
  const img = await decodeImage(jpeg);
  assert.deepEqual([img.width, img.height], [8, 16]);
  const at = (x: number, y: number) => [...img.data.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3)];
  // JPEG is lossy and chroma-subsampled: colours come back close, not exact.
  const near = (got: number[], want: number[]) => got.every((v, i) => Math.abs(v - want[i]) <= 40);
  assert.ok(near(at(4, 2), [255, 0, 0]), `top should be red, got ${at(4, 2)}`);
  assert.ok(near(at(4, 13), [0, 0, 255]), `bottom should be blue, got ${at(4, 13)}`);
});

Deno.test("decodeImage() widens grey and drops alpha without blending", async () => {
  const grey = new Uint8Array([0, 50, 100, 150, 200, 250]);
  const fromGrey = await decodeImage(await raw(grey, 3, 2, 1).png().toBuffer());
  assert.deepEqual([...fromGrey.data], [...grey].flatMap((v) => [v, v, v]));
  const rgba = new Uint8Array([10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255, 1, 2, 3, 4]);
  const fromRgba = await decodeImage(await raw(rgba, 2, 2, 4).png().toBuffer());
  assert.deepEqual([...fromRgba.data], [10, 20, 30, 40, 50, 60, 70, 80, 90, 1, 2, 3]);
});

Deno.test("decodeImage() narrows 16-bit PNGs to 8 bits", async () => {
  const rgb = halves(4, 2, [12, 130, 250], [0, 64, 255]);
  const png16 = await raw(rgb, 4, 2, 3).toColourspace("rgb16").png().toBuffer();
  assert.equal((await sharp(png16).metadata()).depth, "ushort");
  assert.deepEqual([...(await decodeImage(png16)).data], [...rgb]);
});

Deno.test("decodeImage() decodes lossless WebP exactly", async () => {
  const rgb = halves(6, 4, [1, 2, 3], [200, 100, 50]);
  const img = await decodeImage(await raw(rgb, 6, 4, 3).webp({ lossless: true }).toBuffer());
  assert.deepEqual([...img.data], [...rgb]);
});

Deno.test("decodeImage() refuses garbage as an unsupported type", async () => {
  await rejects(decodeImage(new TextEncoder().encode("definitely not an image")), "unsupported_media_type");
  await rejects(decodeImage(new Uint8Array(0)), "unsupported_media_type");
});

Deno.test("decodeImage() refuses truncated JPEG and PNG files", async () => {
  await rejects(decodeImage(JPEG.subarray(0, JPEG.length - 1000)), "undecodable_image");
  await rejects(decodeImage(JPEG.subarray(0, 600)), "undecodable_image");
  const png = await raw(halves(64, 64, [1, 2, 3], [4, 5, 6]), 64, 64, 3).png().toBuffer();
  await rejects(decodeImage(png.subarray(0, png.length - 20)), "undecodable_image");
});

Deno.test("decodeImage() refuses decompression bombs from the header alone", async () => {
  // A PNG signature, an IHDR claiming 100000 x 100000 pixels and IEND: no image data to decode at all.
  const bomb = new Uint8Array([
    ...[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    ...[0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0, 0, 0, 0, 0],
    ...[0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82],
  ]);
  await rejects(decodeImage(bomb), "image_too_large");
  const pixels = PHOTO.width * PHOTO.height;
  await rejects(decodeImage(JPEG, pixels - 1), "image_too_large");
  assert.equal((await decodeImage(JPEG, pixels)).width, PHOTO.width);
});

Deno.test("readImageHeader() refuses a JPEG frame header too short for its size fields as corrupt", async () => {
  for (const length of [0, 2, 7]) {
    const bytes = new Uint8Array([0xff, 0xd8, 0xff, 0xc0, 0, length, 8, 0, 9]);
    assert.throws(
      () => readImageHeader(bytes),
      (err) => err instanceof ImageError && err.kind === "undecodable_image",
    );
    await rejects(decodeImage(bytes), "undecodable_image");
  }
});
