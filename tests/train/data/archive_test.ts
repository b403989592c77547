import assert from "node:assert/strict";
import { gzipSync, zipSync } from "fflate";
import { extractArchive, safePath } from "../../../src/train/data/archive.ts";
import { DatasetError } from "../../../src/train/data/problems.ts";
import { makeTar } from "./_tar.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("extractArchive unpacks zip and tar.gz into the same tree", async () => {
  const files = { "ds/images/a.png": enc("png-a"), "ds/labels/a.txt": enc("0 0.5 0.5 0.1 0.1\n") };
  await withDir(async (dir) => {
    assert.deepEqual(await extractArchive(zipSync(files), `${dir}/zip`), Object.keys(files).sort());
    assert.equal(await Deno.readTextFile(`${dir}/zip/ds/labels/a.txt`), "0 0.5 0.5 0.1 0.1\n");
    const tar = makeTar([
      { name: "ds/", type: "5" },
      ...Object.entries(files).map(([name, data]) => ({ name, data })),
    ]);
    assert.deepEqual(await extractArchive(gzipSync(tar), `${dir}/tgz`), Object.keys(files).sort());
    assert.deepEqual(await Deno.readFile(`${dir}/tgz/ds/images/a.png`), enc("png-a"));
  });
});

Deno.test("extractArchive refuses path traversal and links, listing every offending entry, writing nothing", async () => {
  await withDir(async (dir) => {
    const tar = makeTar([
      { name: "ok/images/a.png", data: enc("x") },
      { name: "../evil.txt", data: enc("x") },
      { name: "/etc/passwd", data: enc("x") },
      { name: "link", type: "2" },
    ]);
    const err = await extractArchive(tar, dir).catch((e) => e);
    assert.ok(err instanceof DatasetError);
    assert.deepEqual(err.problems.map((p) => p.file), ["link", "../evil.txt", "/etc/passwd"]);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("extractArchive stops a decompression bomb at the size limit", async () => {
  const bomb = gzipSync(makeTar([{ name: "big.bin", data: new Uint8Array(4 << 20) }]));
  assert.ok(bomb.length < 64 << 10);
  await withDir(async (dir) => {
    const limits = { maxBytes: 1 << 20, maxEntries: 10 };
    const err = await extractArchive(bomb, dir, limits).catch((e) => e);
    assert.ok(err instanceof DatasetError && /more than 1048576 bytes/.test(err.message), String(err));
    const zipErr = await extractArchive(zipSync({ "big.bin": new Uint8Array(4 << 20) }), dir, limits).catch((
      e,
    ) => e);
    assert.ok(zipErr instanceof DatasetError && /more than/.test(zipErr.message), String(zipErr));
  });
});

Deno.test("extractArchive reports garbage as an unreadable archive", async () => {
  const err = await extractArchive(enc("definitely not an archive"), "/nonexistent").catch((e) => e);
  assert.ok(err instanceof DatasetError);
  assert.equal(err.problems[0].file, "archive");
});

Deno.test("safePath keeps relative names and rejects escapes", () => {
  assert.equal(safePath("a/./b\\c.png"), "a/b/c.png");
  assert.equal(safePath("dir/"), "");
  assert.equal(safePath("a/../../b"), null);
  assert.equal(safePath("/abs"), null);
  assert.equal(safePath("C:/x"), null);
});
