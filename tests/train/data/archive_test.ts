import assert from "node:assert/strict";
import { deflateSync, gzipSync, zipSync } from "fflate";
import {
  type ArchiveLimits,
  DEFAULT_ARCHIVE_LIMITS,
  extractArchive,
} from "../../../src/train/data/archive.ts";
import { safePath } from "../../../src/train/data/archive_target.ts";
import { liveWorkerThreads } from "../../../src/workers/spawn.ts";
import { until } from "../../_helpers/poll.ts";
import { DatasetError } from "../../../src/train/data/problems.ts";
import { zerosTarGz } from "./_bomb.ts";
import { makeTar } from "./_tar.ts";
import { makeZip } from "./_zip.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** How long one unpack in these tests may take before it counts as hung (they take well under a second). */
const HANG_MS = 20_000;

/** Writes `bytes` as the archive file beside `dest` and unpacks it there; a hang is stopped and fails. */
async function extract(bytes: Uint8Array, dest: string, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS) {
  const archive = `${dest}.archive`;
  await Deno.writeFile(archive, bytes);
  try {
    return await extractArchive(archive, dest, limits, AbortSignal.timeout(HANG_MS));
  } finally {
    await Deno.remove(archive);
  }
}

/** Every file and directory under `dir`, relative to it, sorted. */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = prefix + e.name;
    out.push(e.isDirectory ? `${rel}/` : rel);
    if (e.isDirectory) out.push(...await tree(`${dir}/${e.name}`, `${rel}/`));
  }
  return out.sort();
}

async function expectUnreadable(bytes: Uint8Array, dir: string, pattern: RegExp) {
  const err = await extract(bytes, `${dir}/out`).catch((e) => e);
  assert.ok(err instanceof DatasetError, String(err));
  assert.equal(err.problems.at(-1)?.file, "archive", err.message);
  assert.match(err.message, pattern);
  assert.deepEqual(await tree(dir), ["out/"], "nothing is left but the empty destination");
}

Deno.test("extractArchive unpacks zip and tar.gz into the same tree", async () => {
  const files = { "ds/images/a.png": enc("png-a"), "ds/labels/a.txt": enc("0 0.5 0.5 0.1 0.1\n") };
  await withDir(async (dir) => {
    assert.deepEqual(await extract(zipSync(files), `${dir}/zip`), Object.keys(files).sort());
    assert.equal(await Deno.readTextFile(`${dir}/zip/ds/labels/a.txt`), "0 0.5 0.5 0.1 0.1\n");
    const tar = makeTar([
      { name: "ds/", type: "5" },
      ...Object.entries(files).map(([name, data]) => ({ name, data })),
    ]);
    assert.deepEqual(await extract(gzipSync(tar), `${dir}/tgz`), Object.keys(files).sort());
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
    const err = await extract(tar, `${dir}/out`).catch((e) => e);
    assert.ok(err instanceof DatasetError);
    assert.deepEqual(err.problems.map((p) => p.file), ["../evil.txt", "/etc/passwd", "link"]);
    assert.deepEqual([...Deno.readDirSync(`${dir}/out`)], []);
  });
});

Deno.test("extractArchive stops a decompression bomb at the size limit", async () => {
  const bomb = gzipSync(makeTar([{ name: "big.bin", data: new Uint8Array(4 << 20) }]));
  assert.ok(bomb.length < 64 << 10);
  await withDir(async (dir) => {
    const limits = { maxBytes: 1 << 20, maxEntries: 10 };
    const err = await extract(bomb, `${dir}/out`, limits).catch((e) => e);
    assert.ok(err instanceof DatasetError && /more than 1048576 bytes/.test(err.message), String(err));
    const zipErr = await extract(zipSync({ "big.bin": new Uint8Array(4 << 20) }), `${dir}/out`, limits)
      .catch((e) => e);
    assert.ok(zipErr instanceof DatasetError && /more than/.test(zipErr.message), String(zipErr));
  });
});

Deno.test("extractArchive reports garbage as an unreadable archive", async () => {
  await withDir(async (dir) => {
    const err = await extract(enc("definitely not an archive"), `${dir}/out`).catch((e) => e);
    assert.ok(err instanceof DatasetError);
    assert.equal(err.problems[0].file, "archive");
  });
});

Deno.test("safePath keeps relative names and rejects escapes", () => {
  assert.equal(safePath("a/./b\\c.png"), "a/b/c.png");
  assert.equal(safePath("dir/"), "");
  assert.equal(safePath("a/../../b"), null);
  assert.equal(safePath("/abs"), null);
  assert.equal(safePath("C:/x"), null);
});

Deno.test("a tar header with a negative size ends with invalid_dataset for every entry type, plain and gzipped", async () => {
  // The finding: size '-1000' parsed as -512 moved the reader back to the same header forever.
  for (const type of ["5", "g", "x", "L", "0"]) {
    const tar = makeTar([{ name: "images/a.png", data: enc("x") }, {
      name: "evil",
      type,
      sizeField: "-1000",
    }]);
    await withDir(async (dir) => {
      await expectUnreadable(tar, dir, /size '-1000' is not an octal number/);
      await expectUnreadable(gzipSync(tar), dir, /size '-1000' is not an octal number/);
    });
  }
});

Deno.test("tar numeric fields are strict: junk digits, negative base-256 and bad checksums are refused", async () => {
  const negative256 = String.fromCharCode(0xff).repeat(12);
  const cases: [Uint8Array, RegExp][] = [
    [makeTar([{ name: "a", sizeField: "0x10" }]), /is not an octal number/],
    [makeTar([{ name: "a", sizeField: "9" }]), /is not an octal number/],
    [makeTar([{ name: "a", sizeField: "1e3" }]), /is not an octal number/],
    [makeTar([{ name: "a", type: "x", sizeField: "77777777777" }]), /'x' record of \d+ bytes/],
  ];
  const corrupt = makeTar([{ name: "a", data: enc("x") }]);
  corrupt[0] ^= 1; // flips a name bit without fixing the checksum
  cases.push([corrupt, /wrong checksum/]);
  await withDir(async (dir) => {
    for (const [bytes, pattern] of cases) await expectUnreadable(bytes, dir, pattern);
    const header = makeTar([{ name: "a" }]);
    header.set(new TextEncoder().encode(negative256).subarray(0, 12), 124);
    await expectUnreadable(header, dir, /(negative base-256|wrong checksum)/);
  });
});

Deno.test("tar reads GNU base-256 sizes, long names and pax paths", async () => {
  const longName = `images/${"n".repeat(150)}.png`;
  const pax = (key: string, value: string) => {
    const body = ` ${key}=${value}\n`;
    let length = body.length + 1;
    while (`${length}${body}`.length !== length) length++;
    return enc(`${length}${body}`);
  };
  const tar = makeTar([
    { name: "././@LongLink", type: "L", data: enc(longName + "\0") },
    { name: "short", data: enc("long") },
    { name: "pax", type: "x", data: pax("path", "labels/pax.txt") },
    { name: "ignored", data: enc("pax") },
    { name: "b256", data: enc("base-256") },
  ]);
  // The last entry's size in GNU base-256: 0x80 then the value big-endian.
  const at = tar.findIndex((_, i) =>
    i % 512 === 0 && new TextDecoder().decode(tar.subarray(i, i + 4)) === "b256"
  );
  const field = new Uint8Array(12);
  field[0] = 0x80;
  field[11] = 8;
  tar.set(field, at + 124);
  tar.set(enc("        "), at + 148);
  const sum = tar.subarray(at, at + 512).reduce((a, b) => a + b, 0);
  tar.set(enc(sum.toString(8).padStart(6, "0") + "\0 "), at + 148);
  await withDir(async (dir) => {
    assert.deepEqual(await extract(tar, `${dir}/out`), ["b256", longName, "labels/pax.txt"].sort());
    assert.equal(await Deno.readTextFile(`${dir}/out/${longName}`), "long");
    assert.equal(await Deno.readTextFile(`${dir}/out/labels/pax.txt`), "pax");
    assert.equal(await Deno.readTextFile(`${dir}/out/b256`), "base-256");
  });
});

Deno.test("zip sizes are counted as inflated, not as declared: entries claiming 1 byte stop at the cap", async () => {
  const zeros = deflateSync(new Uint8Array(4 << 20), { level: 1 });
  const entries = Array.from({ length: 8 }, (_, i) => ({
    name: `images/${i}.png`,
    data: zeros,
    method: 8 as const,
    declaredSize: 1,
  }));
  await withDir(async (dir) => {
    const limits = { maxBytes: 6 << 20, maxEntries: 100 };
    const err = await extract(makeZip(entries), `${dir}/out`, limits).catch((e) => e);
    assert.ok(err instanceof DatasetError && /more than 6291456 bytes/.test(err.message), String(err));
    assert.deepEqual(await tree(dir), ["out/"]);
    const one = await extract(makeZip(entries.slice(0, 1)), `${dir}/one`, limits);
    assert.deepEqual(one, ["images/0.png"]);
    assert.equal(
      (await Deno.stat(`${dir}/one/images/0.png`)).size,
      4 << 20,
      "the real size, not the claimed",
    );
  });
});

Deno.test("entries the file system refuses, links and devices are dataset problems, never files outside", async () => {
  const tooLong = `${"x".repeat(300)}.png`;
  const tar = makeTar([
    { name: "a", data: enc("file") },
    { name: "a/b.png", data: enc("under a file") },
    { name: "hard", type: "1" },
    { name: "sym", type: "2" },
    { name: "fifo", type: "6" },
    { name: "../../outside.txt", data: enc("x") },
  ]);
  const zip = makeZip([
    { name: "ok.txt", data: enc("ok") },
    { name: "ok.txt/under", data: enc("x") },
    { name: "link", data: enc("/etc/passwd"), unixMode: 0o120777 },
    { name: "/abs.txt", data: enc("x") },
    { name: "nul\0name", data: enc("x") },
    { name: tooLong, data: enc("x") },
  ]);
  await withDir(async (dir) => {
    const tarErr = await extract(tar, `${dir}/tar`).catch((e) => e);
    assert.ok(tarErr instanceof DatasetError, String(tarErr));
    assert.deepEqual(
      tarErr.problems.map((p: { file: string }) => p.file).sort(),
      ["../../outside.txt", "a/b.png", "fifo", "hard", "sym"].sort(),
    );
    const zipErr = await extract(zip, `${dir}/zip`).catch((e) => e);
    assert.ok(zipErr instanceof DatasetError, String(zipErr));
    assert.deepEqual(
      zipErr.problems.map((p: { file: string }) => p.file).sort(),
      ["/abs.txt", "link", "nul\0name", "ok.txt/under", tooLong].sort(),
    );
    assert.deepEqual(await tree(dir), ["tar/", "zip/"], "nothing written anywhere, destinations emptied");
  });
});

/** Bound on an aborted unpack's worker thread ending: it stops at its next 4 MB write, then is terminated. */
const WORKER_END_MS = 5_000;

Deno.test("aborting an unpack stops its worker and leaves the destination empty", async () => {
  await withDir(async (dir) => {
    // 4 GiB of zeros would take tens of seconds to unpack; the abort comes as soon as the first file exists.
    await Deno.writeFile(`${dir}/big.tgz`, zerosTarGz("big.bin", 4096));
    const controller = new AbortController();
    const unpack = extractArchive(
      `${dir}/big.tgz`,
      `${dir}/out`,
      { maxBytes: 8 * 2 ** 30, maxEntries: 10 },
      controller.signal,
    );
    unpack.catch(() => {}); // awaited below; must not count as unhandled should it fail while we wait
    while (!(await Deno.stat(`${dir}/out/big.bin`).then(() => true, () => false))) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    controller.abort(new Error("client went away"));
    await assert.rejects(unpack, /client went away/);
    assert.deepEqual(await tree(`${dir}/out`), []);
    // Terminating alone left the worker inflating the rest (~19 s of a core); it must stop on the cancel flag.
    await until(
      "the aborted unpack's worker thread to end",
      WORKER_END_MS,
      () => liveWorkerThreads() === 0 || null,
    );
  });
});

Deno.test("a gzip header that never ends is refused after a bounded read, not held whole", async () => {
  // FNAME flag set and 16 MiB of name without its NUL: the decompressor would keep waiting for the header's end.
  const name = new Uint8Array(16 << 20).fill(0x61);
  const gz = new Uint8Array(10 + name.length);
  gz.set([0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 255]);
  gz.set(name, 10);
  await withDir(async (dir) => await expectUnreadable(gz, dir, /gzip stream gives no data for \d+ bytes/));
});
