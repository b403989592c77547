// The TurboJPEG fast path against sharp, the decoder it stands in for: every pixel the same on every JPEG layout
// it takes, sharp's own result (pixels or error) on every JPEG it hands back, and sharp alone where libturbojpeg
// is missing.
import assert from "node:assert/strict";
import sharp, { type Sharp } from "sharp";
import { assertClean, fuzz } from "../_helpers/fuzz.ts";
import { referenceData, referenceName } from "../_helpers/reference.ts";
import { createImageDecoder, type RgbImage, turboJpegDecode } from "../../src/image/decode.ts";
import { ImageError } from "../../src/image/errors.ts";
import { jpegOrientation } from "../../src/image/exif_orientation.ts";
import { readImageHeader } from "../../src/image/header.ts";
import { sharpDecode } from "../../src/image/sharp_decode.ts";
import { OFF_THREAD_PIXELS, openTurboJpeg, TurboJpeg, TURBOJPEG_SONAME } from "../../src/image/turbojpeg.ts";

const opened = openTurboJpeg();
const turbo = opened instanceof TurboJpeg ? opened : null;
if (!turbo) {
  console.log(
    `SKIPPED TurboJPEG tests of tests/image/turbojpeg_decode_test.ts: ${TURBOJPEG_SONAME} does not load ` +
      `(install Debian's libturbojpeg0): ${(opened as { missing: string }).missing}`,
  );
}
const needsTurbo = (name: string) => turbo ? name : `${name} (skipped: libturbojpeg0 not installed)`;
const decoder = createImageDecoder();
const reference = referenceData(import.meta.url, "images/");
const MAX_PIXELS = 40_000_000;

/** Photo-like RGB: smooth gradients (chroma that upsampling must interpolate) plus seeded noise. */
function photo(width: number, height: number, seed: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  let state = seed;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      const jitter = (state >>> 26) - 32;
      const i = (y * width + x) * 3;
      data[i] = (x * 255) / Math.max(1, width - 1) + jitter;
      data[i + 1] = (y * 255) / Math.max(1, height - 1) - jitter;
      data[i + 2] = ((x + y) * 7 + (state >>> 24)) & 0xff;
    }
  }
  return data;
}

const SIZES: [number, number][] = [[1, 1], [7, 5], [16, 16], [17, 33], [33, 17], [130, 97]];
const raw = (w: number, h: number, seed: number) =>
  sharp(photo(w, h, seed), { raw: { width: w, height: h, channels: 3 } });

/** What sharp encodes: both chroma layouts it writes, progressive, mozjpeg's trellis and scans, grey, qualities. */
const ENCODINGS: [string, (s: Sharp) => Sharp][] = [
  ["4:2:0", (s) => s.jpeg()],
  ["4:4:4", (s) => s.jpeg({ chromaSubsampling: "4:4:4" })],
  ["4:2:0 progressive", (s) => s.jpeg({ progressive: true })],
  ["4:4:4 progressive q100", (s) => s.jpeg({ progressive: true, chromaSubsampling: "4:4:4", quality: 100 })],
  ["4:2:0 mozjpeg", (s) => s.jpeg({ mozjpeg: true })],
  ["4:2:0 q20 unoptimised", (s) => s.jpeg({ quality: 20, optimiseCoding: false })],
  ["grey", (s) => s.toColourspace("b-w").jpeg()],
  ["grey progressive", (s) => s.toColourspace("b-w").jpeg({ progressive: true })],
  ["4:2:0 Display P3 profile", (s) => s.withIccProfile("p3").jpeg()],
];

/** JPEG layouts sharp does not write, made once by libjpeg-turbo's cjpeg (tests/fixtures/jpeg/README.md). */
const FIXTURES = [
  "411.jpg",
  "422.jpg",
  "422_progressive.jpg",
  "440.jpg",
  "420_arithmetic.jpg",
  "420_restart_rows.jpg",
  "444_restart_blocks.jpg",
];
const fixture = (name: string) => Deno.readFile(new URL(`../fixtures/jpeg/${name}`, import.meta.url));

async function sharpImage(jpeg: Uint8Array): Promise<RgbImage> {
  return await sharpDecode(jpeg, MAX_PIXELS);
}

function assertSameImage(got: RgbImage | null, want: RgbImage, what: string): void {
  assert.ok(got, `${what}: the TurboJPEG path handed it back to sharp`);
  assert.deepEqual([got.width, got.height], [want.width, want.height], `${what}: size`);
  const differing = got.data.findIndex((v, i) => v !== want.data[i]);
  assert.equal(
    differing,
    -1,
    `${what}: byte ${differing} is ${got.data[differing]}, sharp's ${want.data[differing]}`,
  );
  assert.equal(got.data.length, want.data.length);
}

/** Decodes on the TurboJPEG path alone (null where it hands the file to sharp). */
function fastPath(jpeg: Uint8Array): Promise<RgbImage | null> {
  return turboJpegDecode(turbo!, jpeg, readImageHeader(jpeg));
}

/** The decoder's outcome against sharp's on the same bytes: the same pixels, or the same error. */
async function assertSameOutcome(jpeg: Uint8Array, what: string): Promise<string> {
  const want = await sharpImage(jpeg).catch((err: Error) => err);
  const got = await decoder.decode(jpeg, MAX_PIXELS).catch((err: Error) => err);
  if (want instanceof Error) {
    assert.ok(got instanceof ImageError, `${what}: sharp refuses it (${want.message}), the decoder did not`);
    assert.equal(got.message, `Cannot decode jpeg: ${want.message}`, what);
    return "refused";
  }
  assert.ok(
    !(got instanceof Error),
    `${what}: sharp decodes it, the decoder threw ${(got as Error).message}`,
  );
  assertSameImage(got, want, what);
  return "decoded";
}

Deno.test(needsTurbo("TurboJPEG decodes every layout sharp encodes bit for bit as sharp does"), {
  ignore: !turbo,
}, async () => {
  let seed = 1;
  for (const [w, h] of SIZES) {
    for (const [name, encode] of ENCODINGS) {
      const jpeg = new Uint8Array(await encode(raw(w, h, seed++)).toBuffer());
      const want = await sharpImage(jpeg);
      assertSameImage(await fastPath(jpeg), want, `${name} ${w}x${h}`);
      assertSameImage(await decoder.decode(jpeg), want, `${name} ${w}x${h} via the decoder`);
    }
  }
});

Deno.test(
  needsTurbo(
    "TurboJPEG decodes cjpeg's 4:1:1, 4:2:2, 4:4:0, arithmetic and restart-marker JPEGs as sharp does",
  ),
  {
    ignore: !turbo,
  },
  async () => {
    for (const name of FIXTURES) {
      const jpeg = await fixture(name);
      assertSameImage(await fastPath(jpeg), await sharpImage(jpeg), name);
    }
  },
);

Deno.test(
  needsTurbo("TurboJPEG applies each of the 8 EXIF orientations as sharp does"),
  { ignore: !turbo },
  async () => {
    for (let orientation = 1; orientation <= 8; orientation++) {
      for (const [w, h] of [[17, 33], [130, 97]]) {
        const jpeg = new Uint8Array(
          await raw(w, h, orientation).withMetadata({ orientation }).jpeg().toBuffer(),
        );
        assert.equal(jpegOrientation(jpeg), orientation);
        assertSameImage(await fastPath(jpeg), await sharpImage(jpeg), `orientation ${orientation} ${w}x${h}`);
      }
    }
  },
);

Deno.test(
  needsTurbo(
    "JPEGs TurboJPEG must not take (CMYK, RGB-coded, odd Exif) go to sharp and decode as sharp does",
  ),
  {
    ignore: !turbo,
  },
  async () => {
    const cmyk = new Uint8Array(await raw(33, 17, 9).toColourspace("cmyk").jpeg().toBuffer());
    // Orientation 6 with its value patched to 9: no orientation Exif defines; what it means is sharp's to say.
    const rotated = new Uint8Array(await raw(33, 17, 10).withMetadata({ orientation: 6 }).jpeg().toBuffer());
    const odd = withOrientationValue(rotated, 6, 9);
    assert.equal(jpegOrientation(odd), null);
    const cases: [string, Uint8Array][] = [["CMYK", cmyk], ["RGB-coded", await fixture("rgb.jpg")], [
      "orientation 9",
      odd,
    ]];
    for (const [name, jpeg] of cases) {
      assert.equal(await fastPath(jpeg), null, `${name} should be left to sharp`);
      assert.equal(await assertSameOutcome(jpeg, name), "decoded");
    }
  },
);

Deno.test(
  needsTurbo(
    "Corrupt JPEGs get sharp's verdict: the same error, or the same pixels where sharp decodes them",
  ),
  {
    ignore: !turbo,
  },
  async () => {
    const jpeg = new Uint8Array(await raw(130, 97, 3).jpeg().toBuffer());
    const scan = readScanStart(jpeg);
    const outcomes: string[] = [];
    // Scan data cut short behind an intact end marker, and single bytes of the scan or the tables overwritten.
    for (const keep of [10, 200, 1000]) {
      outcomes.push(
        await assertSameOutcome(concat(jpeg.subarray(0, scan + keep), [0xff, 0xd9]), `cut at ${keep}`),
      );
    }
    // scan - 5 lies in the scan header (a component selector): sharp refuses every such file.
    for (const at of [scan - 40, scan - 5, scan + 3, scan + 500, jpeg.length - 50]) {
      for (const value of [0x00, 0xff, 0x5a]) {
        const bad = jpeg.slice();
        bad[at] = value;
        outcomes.push(await assertSameOutcome(bad, `byte ${at} set to ${value}`));
      }
    }
    assert.ok(outcomes.includes("refused"), `no case was refused: ${outcomes}`);
  },
);

Deno.test(
  needsTurbo("Concurrent TurboJPEG decodes each give their own image"),
  { ignore: !turbo },
  async () => {
    const jpegs = await Promise.all(
      SIZES.map(([w, h], i) => raw(w, h, 100 + i).jpeg().toBuffer().then((b) => new Uint8Array(b))),
    );
    const sequential: RgbImage[] = [];
    for (const jpeg of jpegs) sequential.push(await sharpImage(jpeg));
    const together = await Promise.all([...jpegs, ...jpegs].map((jpeg) => decoder.decode(jpeg)));
    together.forEach((image, i) => assertSameImage(image, sequential[i % jpegs.length], `decode ${i}`));
  },
);

Deno.test(
  needsTurbo("fuzz: mutated JPEGs decode to the same pixels or the same error with or without libturbojpeg"),
  {
    ignore: !turbo,
  },
  async () => {
    const report = await fuzz(new URL("./_turbojpeg_fuzz_target.ts", import.meta.url), {
      regressions: [],
      budgetMs: 3000,
      hangMs: 30_000,
    });
    console.log(`turbojpeg differential fuzz: ${report.cases} cases`, report.outcomes);
    assertClean(report, 50);
  },
);

Deno.test(
  needsTurbo("Images from OFF_THREAD_PIXELS up decode off the JS thread, as sharp does, two at once"),
  {
    ignore: !turbo,
  },
  async () => {
    const side = Math.sqrt(OFF_THREAD_PIXELS);
    const jpegs = await Promise.all(
      [[side, side], [side + 1, side - 1]].map(([w, h], i) =>
        raw(w, h, 200 + i).jpeg({ quality: 70 }).toBuffer().then((b) => new Uint8Array(b))
      ),
    );
    // The JS thread is free while both decode: a timer set now fires before they are done.
    let ticked = false;
    setTimeout(() => ticked = true, 0);
    const [first, second] = await Promise.all(jpegs.map((jpeg) => fastPath(jpeg)));
    assert.ok(ticked, "the event loop was held through the decodes");
    assertSameImage(first, await sharpImage(jpegs[0]), `${side}x${side}`);
    assertSameImage(second, await sharpImage(jpegs[1]), `${side + 1}x${side - 1}`);
  },
);

Deno.test("Without libturbojpeg the decoder is sharp and says why", async () => {
  const fallback = createImageDecoder("/nonexistent/libturbojpeg.so.0");
  assert.match(fallback.jpegDecoder, /^sharp \(libturbojpeg not loaded: .*nonexistent/);
  const jpeg = new Uint8Array(await raw(33, 17, 5).jpeg().toBuffer());
  assertSameImage(await fallback.decode(jpeg), await sharpImage(jpeg), "sharp fallback");
  await assert.rejects(
    fallback.decode(withScanHeaderByte(jpeg, 0xff)),
    (err) => err instanceof ImageError && err.kind === "undecodable_image",
  );
  if (turbo) assert.equal(decoder.jpegDecoder, `turbojpeg (${TURBOJPEG_SONAME})`);
});

Deno.test(
  referenceName(needsTurbo("TurboJPEG decodes every JPEG of the reference images as sharp does"), reference),
  {
    ignore: !turbo || reference.missing,
  },
  async () => {
    const dir = reference.path("images/");
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => /\.jpe?g$/i.test(n)).sort();
    assert.ok(names.length > 0, `no JPEG in ${dir}`);
    for (const name of names) {
      const jpeg = await Deno.readFile(`${dir}/${name}`);
      assertSameImage(await fastPath(jpeg), await sharpImage(jpeg), name);
    }
  },
);

/**
 * `jpeg` with its Exif orientation entry's value `from` overwritten by `to`: the IFD entry (tag 0x0112, type
 * SHORT, count 1, value) is found byte for byte in either byte order.
 */
function withOrientationValue(jpeg: Uint8Array, from: number, to: number): Uint8Array {
  const little = [0x12, 0x01, 3, 0, 1, 0, 0, 0, from, 0];
  const big = [0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, from];
  for (const [entry, valueAt] of [[little, 8], [big, 9]] as const) {
    const at = jpeg.findIndex((_, i) => entry.every((b, k) => jpeg[i + k] === b));
    if (at >= 0) {
      const patched = jpeg.slice();
      patched[at + valueAt] = to;
      return patched;
    }
  }
  throw new Error(`no orientation entry of value ${from} in the Exif data`);
}

/** Where the first scan's entropy-coded data starts (after the SOS segment). */
function readScanStart(jpeg: Uint8Array): number {
  for (let pos = 2; pos + 4 <= jpeg.length;) {
    const length = (jpeg[pos + 2] << 8) | jpeg[pos + 3];
    if (jpeg[pos + 1] === 0xda) return pos + 2 + length;
    pos += 2 + length;
  }
  throw new Error("no scan");
}

/** `jpeg` with its scan header's first component selector set to `value` (0xff names no component). */
function withScanHeaderByte(jpeg: Uint8Array, value: number): Uint8Array {
  const bad = jpeg.slice();
  bad[readScanStart(jpeg) - 5] = value;
  return bad;
}

function concat(head: Uint8Array, tail: number[]): Uint8Array {
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}
