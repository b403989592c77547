import assert from "node:assert/strict";
import { applyOrientation, jpegOrientation } from "../../src/image/exif_orientation.ts";

/** An IFD entry: tag, type (3 = SHORT, 4 = LONG), count, value. */
type Entry = [number, number, number, number];
const ORIENTATION = 0x0112;

/** A JPEG's marker structure up to its scan, with one APP1 Exif segment per IFD0 given (TIFF in `order`). */
function exifJpeg(ifds: Entry[][], order: "II" | "MM" = "II"): Uint8Array {
  const little = order === "II";
  const segments = ifds.map((entries) => {
    const tiff = new DataView(new ArrayBuffer(8 + 2 + entries.length * 12 + 4));
    tiff.setUint16(0, little ? 0x4949 : 0x4d4d);
    tiff.setUint16(2, 42, little);
    tiff.setUint32(4, 8, little);
    tiff.setUint16(8, entries.length, little);
    entries.forEach(([tag, type, count, value], i) => {
      const at = 10 + i * 12;
      tiff.setUint16(at, tag, little);
      tiff.setUint16(at + 2, type, little);
      tiff.setUint32(at + 4, count, little);
      // A SHORT sits in the first two bytes of the value field, in the file's byte order.
      if (type === 3) tiff.setUint16(at + 8, value, little);
      else tiff.setUint32(at + 8, value, little);
    });
    const payload = [...new TextEncoder().encode("Exif\0\0"), ...new Uint8Array(tiff.buffer)];
    const length = payload.length + 2;
    return [0xff, 0xe1, length >> 8, length & 0xff, ...payload];
  });
  return new Uint8Array([0xff, 0xd8, ...segments.flat(), 0xff, 0xda, 0, 2]);
}

Deno.test("jpegOrientation() reads IFD0's orientation in either byte order, 1 where there is none", () => {
  for (let value = 1; value <= 8; value++) {
    assert.equal(jpegOrientation(exifJpeg([[[ORIENTATION, 3, 1, value]]])), value);
    assert.equal(jpegOrientation(exifJpeg([[[0x010f, 2, 4, 0], [ORIENTATION, 3, 1, value]]], "MM")), value);
  }
  assert.equal(jpegOrientation(exifJpeg([])), 1, "no Exif segment");
  assert.equal(jpegOrientation(exifJpeg([[[0x010f, 2, 4, 0]]])), 1, "no orientation tag");
});

Deno.test("jpegOrientation() gives null for Exif data other readers may read otherwise", () => {
  const cases: [string, Uint8Array][] = [
    ["value 0", exifJpeg([[[ORIENTATION, 3, 1, 0]]])],
    ["value 9", exifJpeg([[[ORIENTATION, 3, 1, 9]]])],
    ["a LONG", exifJpeg([[[ORIENTATION, 4, 1, 6]]])],
    ["count 2", exifJpeg([[[ORIENTATION, 3, 2, 6]]])],
    ["the tag twice", exifJpeg([[[ORIENTATION, 3, 1, 6], [ORIENTATION, 3, 1, 3]]])],
    ["two Exif segments", exifJpeg([[[ORIENTATION, 3, 1, 6]], [[ORIENTATION, 3, 1, 6]]])],
  ];
  const broken = exifJpeg([[[ORIENTATION, 3, 1, 6]]]);
  broken[4 + 2 + 6] = 0x41; // "AI": no TIFF byte order
  cases.push(["a bad byte order", broken]);
  const overlong = exifJpeg([[[ORIENTATION, 3, 1, 6]]]);
  overlong[4 + 2 + 6 + 8] = 0x40; // 64 IFD entries in a segment that holds one
  cases.push(["an IFD past its segment", overlong]);
  for (const [name, jpeg] of cases) assert.equal(jpegOrientation(jpeg), null, name);
});

Deno.test("applyOrientation() maps a 3x2 image's corners as EXIF's 8 orientations say", () => {
  // Pixels numbered 0..5 row by row (R = the number): a b c / d e f.
  const image = new Uint8Array([0, 1, 2, 3, 4, 5].flatMap((v) => [v, 0, 0]));
  const rows = (o: number) => {
    const { width, height, data } = applyOrientation(image, 3, 2, o);
    return Array.from(
      { length: height },
      (_, y) => Array.from({ length: width }, (_, x) => data[(y * width + x) * 3]),
    );
  };
  assert.deepEqual(rows(1), [[0, 1, 2], [3, 4, 5]]);
  assert.deepEqual(rows(2), [[2, 1, 0], [5, 4, 3]]); // mirrored left-right
  assert.deepEqual(rows(3), [[5, 4, 3], [2, 1, 0]]); // turned half round
  assert.deepEqual(rows(4), [[3, 4, 5], [0, 1, 2]]); // mirrored top-bottom
  assert.deepEqual(rows(5), [[0, 3], [1, 4], [2, 5]]); // transposed
  assert.deepEqual(rows(6), [[3, 0], [4, 1], [5, 2]]); // turned 90° clockwise
  assert.deepEqual(rows(7), [[5, 2], [4, 1], [3, 0]]); // transversed
  assert.deepEqual(rows(8), [[2, 5], [1, 4], [0, 3]]); // turned 90° anticlockwise
});
