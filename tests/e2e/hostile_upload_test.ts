/**
 * Hostile fine-tune uploads against a real server process, so a reader that loops or inflates on the event loop
 * shows as what it did to an operator: a request that never answers and a /healthz that stops answering. Every
 * request has a deadline; a server that does not answer in time fails the test instead of hanging it.
 */
import assert from "node:assert/strict";
import { gzipSync } from "fflate";
import { deflatedZeros, zerosTarGz } from "../train/data/_bomb.ts";
import { makeTar } from "../train/data/_tar.ts";
import { makeZip } from "../train/data/_zip.ts";
import { serve, stop } from "./_serve_child.ts";

const MIB = 1 << 20;
/** The server's --max-dataset-bytes: the cap on the upload and on what it unpacks to. */
const CAP = 448 * MIB;
/** How long any one request may take before the server counts as hung (they take seconds at most). */
const DEADLINE_MS = 60_000;

/** Peak resident memory of a process so far (Linux), in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function upload(url: string, archive: Uint8Array<ArrayBuffer>) {
  const form = new FormData();
  form.append("dataset", new File([archive], "dataset"));
  const res = await fetch(`${url}/v1/models/default/finetune`, {
    method: "POST",
    body: form,
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
  return { status: res.status, body: await res.json() };
}

async function status(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(DEADLINE_MS) });
  await res.body?.cancel();
  return res.status;
}

const healthy = async (url: string) => await status(`${url}/healthz`) === 200;

Deno.test({
  name: "hostile archives get 400 invalid_dataset from a server that keeps answering, with bounded memory",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    // The embedded default model: any served model takes the uploads, and it keeps the test off the reference data.
    const server = await serve("--max-dataset-bytes", String(CAP));
    const { url, dataDir } = server;
    try {
      await t.step("a file of 384 MiB in a .tar.gz unpacks without holding it in memory", async () => {
        // The same upload of 1 MiB first, so the peak it is compared with already holds one unpack worker (a V8
        // isolate, ~100-230 MB here). The file is large beside that (under load the last upload's worker may not
        // be gone when the next starts), so only holding the file in memory grows the peak by its size.
        const size = 384 * MIB;
        assert.equal((await upload(url, zerosTarGz("zeros.bin", 1))).status, 400);
        const before = await peakRss(server.child.pid);
        const { status, body } = await upload(url, zerosTarGz("zeros.bin", size / MIB));
        assert.equal(status, 400, JSON.stringify(body));
        assert.equal(body.error.code, "invalid_dataset");
        assert.match(body.error.message, /empty dataset/, "unpacked in full, then found to hold no images");
        const growth = (await peakRss(server.child.pid)) - before;
        assert.ok(growth < size, `peak RSS grew by ${growth} bytes: the file was held in memory`);
      });

      await t.step("1 GiB in a ~1 MB .tar.gz is refused at the cap", async () => {
        const { status, body } = await upload(url, zerosTarGz("zeros.bin", 1024));
        assert.equal(status, 400, JSON.stringify(body));
        assert.match(body.error.message, new RegExp(`more than ${CAP} bytes`));
      });

      await t.step(
        "a tar header with size '-1000' (types 5, g, x, L; plain and gzipped) is refused",
        async () => {
          for (const type of ["5", "g", "x", "L"]) {
            const tar = makeTar([{ name: "evil", type, sizeField: "-1000" }]);
            for (const archive of [tar, gzipSync(tar)]) {
              const { status, body } = await upload(url, archive as Uint8Array<ArrayBuffer>);
              assert.equal(status, 400, JSON.stringify(body));
              assert.equal(body.error.code, "invalid_dataset");
              assert.match(body.error.message, /not an octal number/);
              assert.ok(await healthy(url), "/healthz answers after it");
            }
          }
        },
      );

      await t.step(
        "8 zip entries declared 1 byte holding 64 MiB each: /healthz answers meanwhile, refused",
        async () => {
          const zeros = deflatedZeros(64);
          const entries = Array.from({ length: 8 }, (_, i) => ({
            name: `images/${i}.jpg`,
            data: zeros,
            method: 8 as const,
            declaredSize: 1,
          }));
          let done = false;
          const post = upload(url, makeZip(entries) as Uint8Array<ArrayBuffer>).finally(() => done = true);
          post.catch(() => {}); // awaited below; a /healthz that times out first must not leave it unhandled
          let healthDuring = 0;
          while (!done) {
            if (await healthy(url) && !done) healthDuring++;
          }
          const { status, body } = await post;
          assert.equal(status, 400, JSON.stringify(body));
          assert.match(body.error.message, new RegExp(`more than ${CAP} bytes`));
          assert.ok(healthDuring > 0, "/healthz answered while the zip was being unpacked");
        },
      );

      const left = await Array.fromAsync(Deno.readDir(`${dataDir}/jobs`)).catch(() => []);
      assert.deepEqual(left, [], "rejected uploads leave nothing in the data dir");
    } finally {
      await stop(server);
    }
  },
});
