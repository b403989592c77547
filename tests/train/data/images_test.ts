import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import type { Sample } from "../../../src/train/data/dataset.ts";
import { ImageStore } from "../../../src/train/data/images.ts";

const IMGSZ = 32;
const SQUARE_BYTES = 3 * IMGSZ * IMGSZ; // one cached 8-bit RGB square

Deno.test("ImageStore keeps decoded images within its byte budget, evicting the least recently used", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-image-cache-" });
  try {
    const sample = (name: string) => ({ imagePath: join(dir, name) }) as Sample;
    for (const [i, name] of ["a.png", "b.png", "c.png"].entries()) {
      const png = await sharp({
        create: { width: 40, height: 30, channels: 3, background: { r: 50 * i, g: 90, b: 160 } },
      }).png().toBuffer();
      await Deno.writeFile(join(dir, name), png);
    }
    const store = new ImageStore(IMGSZ, false, 2 * SQUARE_BYTES);
    const a = await store.load(sample("a.png"));
    await store.load(sample("b.png"));
    assert.equal(await store.load(sample("a.png")), a, "a hit returns the cached image");
    await store.load(sample("c.png")); // over budget: b, now the least recently used, goes
    assert.equal(store.cachedBytes, 2 * SQUARE_BYTES);
    // With the files gone only what is still cached loads.
    for (const name of ["a.png", "b.png", "c.png"]) await Deno.remove(join(dir, name));
    assert.equal(await store.load(sample("a.png")), a);
    await store.load(sample("c.png"));
    await assert.rejects(store.load(sample("b.png")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ImageStore does not cache an image larger than its whole budget", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-image-cache-" });
  try {
    const path = join(dir, "a.png");
    await Deno.writeFile(
      path,
      await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } }).png().toBuffer(),
    );
    const store = new ImageStore(IMGSZ, false, SQUARE_BYTES - 1);
    await store.load({ imagePath: path } as Sample);
    assert.equal(store.cachedBytes, 0);
    await Deno.remove(path);
    await assert.rejects(store.load({ imagePath: path } as Sample), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
