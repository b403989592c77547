/**
 * Fuzzing the archive readers with seeded mutations of valid .tar, .tar.gz and .zip uploads. Every case must end,
 * within a deadline, either unpacked (every listed file a regular file under the destination) or refused as an
 * invalid dataset; never another error, and never a file, directory or link anywhere but the destination.
 * Seeds that once failed are kept in REGRESSIONS and run first.
 */
import assert from "node:assert/strict";
import { gzipSync, zipSync } from "fflate";
import { Rng } from "../../../src/train/data/rng.ts";
import type { FuzzCase, FuzzOutcome } from "./_fuzz_worker.ts";
import { makeTar } from "./_tar.ts";
import { makeZip } from "./_zip.ts";

/** Mutated archives per format per run; each is a few KB, so a case takes milliseconds. */
const CASES_PER_FORMAT = 120;
/** A case that has not ended after this long is a hang (they take milliseconds). */
const CASE_DEADLINE_MS = 10_000;
const LIMITS = { maxBytes: 1 << 20, maxEntries: 64 };
const encoder = new TextEncoder();
const enc = (s: string) => encoder.encode(s);

/** Seeds (format, seed) that once failed, with what they found; they run before the random ones. */
const REGRESSIONS: { format: Format; seed: number; found: string }[] = [
  // Found against the pre-fix size parsing (parseInt(field, 8), negative sizes moving the reader backwards):
  { format: "tar", seed: 38, found: "type '5' header of size '-1000' looped the reader on the same header" },
  { format: "tar", seed: 71, found: "type '0' header of size '-512' looped the reader on the same header" },
  { format: "tar.gz", seed: 22, found: "the same inside gzip: size '-512' looped the reader" },
];

type Format = "tar" | "tar.gz" | "zip";

const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
/** Byte strings that sit on the edges of the formats' fields. */
const INTERESTING = ["-1000", "\0", " ", "\xff\xff\xff\xff", "../", "/", "\x80"].map(bytes);
/** Per tar header field (offset): values that once broke or could break a reader. */
const SIZES = [
  "-1000",
  "-512",
  "-1",
  "77777777777",
  "99999999999",
  "0x10",
  " 1 2",
  "",
  "\x80\0\0\0\0\0\0\0\0\x7f\xff\xff",
  "\xff",
];
const TAR_FIELDS: [number, Uint8Array[]][] = [
  // The size field thrice: it decides where the next header is, the part of a tar reader most easily broken.
  ...Array(3).fill([124, SIZES.map(bytes)]),
  [156, ["5", "g", "x", "L", "K", "1", "2", "6", "\0", "Z"].map(bytes)],
  [148, ["0", "-1", "77777777", "\0"].map(bytes)],
  [0, ["../x", "/abs", "a/../../b", "", "a\\..\\..\\b"].map(bytes)],
  [345, ["..", "/", "x"].map(bytes)],
];

const choose = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng.random() * items.length)];

function baseTar(): Uint8Array {
  const pax = (key: string, value: string) => {
    const body = ` ${key}=${value}\n`;
    let length = body.length + 1;
    while (`${length}${body}`.length !== length) length++;
    return enc(`${length}${body}`);
  };
  return makeTar([
    { name: "ds/", type: "5" },
    { name: "ds/images/a.png", data: enc("png-a".repeat(40)) },
    { name: "././@LongLink", type: "L", data: enc(`ds/labels/${"l".repeat(120)}.txt\0`) },
    { name: "short", data: enc("0 0.5 0.5 0.1 0.1\n") },
    { name: "pax", type: "x", data: pax("path", "ds/labels/a.txt") },
    { name: "ignored", data: enc("1 0.5 0.5 0.2 0.2\n") },
  ]);
}

function baseZip(rng: Rng): Uint8Array {
  const files = {
    "ds/images/a.png": enc("png-a".repeat(200)),
    "ds/labels/a.txt": enc("0 0.5 0.5 0.1 0.1\n"),
  };
  return rng.random() < 0.5
    ? zipSync(files)
    : makeZip(Object.entries(files).map(([name, data]) => ({ name, data })));
}

/** Recomputes the checksum of the tar header holding byte `at`, so mutations get past the checksum check. */
function fixChecksum(tar: Uint8Array, at: number) {
  const start = at - (at % 512);
  if (start + 512 > tar.length) return;
  const h = tar.subarray(start, start + 512);
  h.set(enc("        "), 148);
  const sum = h.reduce((a, b) => a + b, 0);
  h.set(enc(sum.toString(8).padStart(6, "0") + "\0 "), 148);
}

/**
 * 1 to 4 random edits: byte flips, interesting or random bytes over a span, truncation, a repeated slice; on a
 * tar also a header field set to an edge value, usually with the checksum fixed so the value gets parsed.
 */
function mutate(input: Uint8Array, rng: Rng, isTar: boolean): Uint8Array {
  let out = input.slice();
  const edits = 1 + Math.floor(rng.random() * 4);
  for (let e = 0; e < edits && out.length > 0; e++) {
    const at = Math.floor(rng.random() * out.length);
    const pick = rng.random();
    if (isTar && pick < 0.35) {
      const [field, values] = choose(rng, TAR_FIELDS);
      const header = at - (at % 512);
      const value = choose(rng, values);
      const width = field === 124 ? 12 : field === 148 ? 8 : field === 156 ? 1 : field === 0 ? 100 : 155;
      if (header + 512 > out.length) continue;
      out.fill(0, header + field, header + field + width);
      out.set(value.subarray(0, width), header + field);
      if (rng.random() < 0.8) fixChecksum(out, header);
    } else if (pick < 0.5) out[at] ^= 1 << Math.floor(rng.random() * 8);
    else if (pick < 0.6) out.set(choose(rng, INTERESTING).subarray(0, out.length - at), at);
    else if (pick < 0.75) {
      for (let k = 0; k < 8 && at + k < out.length; k++) out[at + k] = Math.floor(rng.random() * 256);
      if (isTar && rng.random() < 0.5) fixChecksum(out, at);
    } else if (pick < 0.87) out = out.slice(0, at);
    else {
      const copy = out.slice(at, at + Math.floor(rng.random() * 1024));
      const merged = new Uint8Array(out.length + copy.length);
      merged.set(out.subarray(0, at));
      merged.set(copy, at);
      merged.set(out.subarray(at), at + copy.length);
      out = merged;
    }
  }
  return out;
}

function fuzzCase(format: Format, seed: number): Uint8Array {
  const rng = new Rng(seed);
  if (format === "tar") return mutate(baseTar(), rng, true);
  if (format === "zip") return mutate(baseZip(rng), rng, false);
  // .tar.gz: mutate the tar inside a valid gzip, or the gzip bytes themselves
  return rng.random() < 0.5
    ? gzipSync(mutate(baseTar(), rng, true))
    : mutate(gzipSync(baseTar()), rng, false);
}

/** Every path under `dir`, relative, with its kind. */
async function walk(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = `${prefix}${e.name}`;
    out.push(`${rel}${e.isSymlink ? "@" : e.isDirectory ? "/" : ""}`);
    if (e.isDirectory) out.push(...await walk(`${dir}/${e.name}`, `${rel}/`));
  }
  return out;
}

Deno.test("archive fuzz: mutated tar, tar.gz and zip unpack or are refused, in time, inside the destination", async () => {
  const sandbox = await Deno.makeTempDir({ prefix: "kestrel-archive-fuzz-" });
  const worker = new Worker(new URL("./_fuzz_worker.ts", import.meta.url), { type: "module" });
  const replies = new Map<number, PromiseWithResolvers<FuzzOutcome>>();
  worker.onmessage = (e: MessageEvent<FuzzOutcome>) => replies.get(e.data.id)?.resolve(e.data);
  const counts: Record<string, number> = { ok: 0, invalid_dataset: 0 };
  try {
    const cases: { format: Format; seed: number }[] = [...REGRESSIONS];
    for (const format of ["tar", "tar.gz", "zip"] as const) {
      for (let seed = 1; seed <= CASES_PER_FORMAT; seed++) cases.push({ format, seed });
    }
    for (const [id, { format, seed }] of cases.entries()) {
      const name = `${format} seed ${seed}`;
      const caseDir = `${sandbox}/case`;
      await Deno.mkdir(caseDir);
      const request: FuzzCase = { id, archive: `${caseDir}/upload`, dest: `${caseDir}/out`, limits: LIMITS };
      await Deno.writeFile(request.archive, fuzzCase(format, seed));
      await Deno.mkdir(request.dest);
      const reply = Promise.withResolvers<FuzzOutcome>();
      replies.set(id, reply);
      worker.postMessage(request);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        reply.promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${name}: no answer in ${CASE_DEADLINE_MS} ms`)),
            CASE_DEADLINE_MS,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      replies.delete(id);
      assert.notEqual(outcome.kind, "other", `${name}: ${outcome.kind === "other" ? outcome.error : ""}`);
      counts[outcome.kind]++;
      const found = await walk(sandbox);
      const outside = found.filter((p) => p !== "case/" && p !== "case/upload" && !p.startsWith("case/out/"));
      assert.deepEqual(outside, [], `${name}: written outside the destination`);
      assert.ok(!found.some((p) => p.endsWith("@")), `${name}: a link was created`);
      if (outcome.kind === "ok") {
        for (const file of outcome.files) {
          assert.ok((await Deno.lstat(`${request.dest}/${file}`)).isFile, `${name}: ${file} is a file`);
        }
      }
      await Deno.remove(caseDir, { recursive: true });
    }
    // Both outcomes must occur, or the mutations are too weak (all refused) or not reaching the readers.
    assert.ok(counts.ok > 0 && counts.invalid_dataset > 0, JSON.stringify(counts));
  } finally {
    worker.terminate();
    await Deno.remove(sandbox, { recursive: true });
  }
});
