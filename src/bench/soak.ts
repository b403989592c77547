/**
 * soak: a server process (`main.ts serve`, native backend, loopback only) under sustained mixed load for a
 * bounded time: N detect clients, model uploads, activations and deletes, fine-tunes, and hostile requests (the
 * attacks the hardening work closed) interleaved. Reports requests served, detect latency, errors by kind, and
 * the server's RSS and open file descriptors at start, after warm-up (one fine-tune done) and at the end.
 * Goals: zero 5xx, zero failed legitimate requests, no hostile request accepted, RSS growth after warm-up < 10%,
 * no leaked descriptors. `KESTREL_SOAK_SECONDS` (default 180) and `KESTREL_SOAK_CLIENTS` (default 4) size it.
 */
import { join } from "node:path";
import { zipSync } from "fflate";
import { OnnxModel } from "../onnx/model.ts";
import { newModelBytes } from "../train/new_model.ts";
import { SYNTH_CLASSES, writeSynthDataset } from "../train/synth.ts";
import { quantile, round2 } from "./support/stats.ts";

const IMGSZ = 128;
const MODEL = "shapes";
const MAX_BODY_BYTES = 2 * 1024 * 1024;
const MAX_DATASET_BYTES = 32 * 1024 * 1024;
const JOB_CONFIG = { imgsz: IMGSZ, batch_size: 8, epochs: 2, val_fraction: 0.25, activate: "never" };
/** Longest a fine-tune of the job above may take on a slow host before the soak calls it failed. */
const JOB_LIMIT_MS = 240_000;
/** Longest any one request may take: past it the server counts as stalled for that request. */
const REQUEST_LIMIT_MS = 30_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function modelBytes(seed: number): Uint8Array<ArrayBuffer> {
  const names = [...SYNTH_CLASSES];
  return newModelBytes({
    nc: names.length,
    names,
    depth: 0.33,
    width: 0.125,
    imgsz: IMGSZ,
    seed,
  }) as Uint8Array<
    ArrayBuffer
  >;
}

/** A tar whose one header claims size -1000 on a directory entry (the reader once looped on it forever). */
function negativeSizeTar(): Uint8Array<ArrayBuffer> {
  const header = new Uint8Array(512);
  const put = (s: string, at: number) => header.set(new TextEncoder().encode(s), at);
  put("images/", 0);
  put("0000755\0", 100);
  put("-1000\0", 124);
  put("00000000000\0", 136);
  put("        ", 148);
  put("5", 156);
  put("ustar\0" + "00", 257);
  const sum = header.reduce((a, b) => a + b, 0);
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  const out = new Uint8Array(512 * 4);
  out.set(header);
  return out;
}

/** A zip of 8 entries of 8 MiB zeros each whose headers claim 1 byte each (a lying zip bomb). */
function lyingZipBomb(): Uint8Array<ArrayBuffer> {
  const files: Record<string, [Uint8Array, { level: 9 }]> = {};
  for (let i = 0; i < 8; i++) files[`images/z${i}.jpg`] = [new Uint8Array(8 * 1024 * 1024), { level: 9 }];
  const zip = zipSync(files);
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  for (let at = 0; at + 4 <= zip.length; at++) {
    const sig = view.getUint32(at, true);
    if (sig === 0x04034b50) view.setUint32(at + 22, 1, true); // local header: uncompressed size
    if (sig === 0x02014b50) view.setUint32(at + 24, 1, true); // central directory: uncompressed size
  }
  return zip as Uint8Array<ArrayBuffer>;
}

/** A valid model plus a Constant node whose tensor points at a file on the server (external data). */
function externalDataModel(): Uint8Array<ArrayBuffer> {
  const model = OnnxModel.parse(modelBytes(1));
  model.graph.node.push(
    {
      opType: "Constant",
      output: ["soak_external"],
      attribute: [{
        name: "value",
        type: 4,
        t: {
          dims: [1],
          dataType: 1,
          dataLocation: 1,
          externalData: [{ key: "location", value: "deno.json" }],
        },
      }],
    } as unknown as (typeof model.graph.node)[number],
  );
  return model.toBytes();
}

function zipDataset(files: Record<string, Uint8Array>): Uint8Array<ArrayBuffer> {
  return zipSync(files) as Uint8Array<ArrayBuffer>;
}

interface Server {
  url: string;
  child: Deno.ChildProcess;
  /** The server's log lines that report a failure, for the report when anything answered 5xx. */
  failures: string[];
}

async function startServer(dir: string, modelPath: string): Promise<Server> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../main.ts", import.meta.url).pathname,
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--backend",
      "native",
      "--data-dir",
      join(dir, "data"),
      "--max-body-bytes",
      String(MAX_BODY_BYTES),
      "--max-dataset-bytes",
      String(MAX_DATASET_BYTES),
      "--model",
      modelPath,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const listening = Promise.withResolvers<string>();
  const failures: string[] = [];
  (async () => {
    let pending = "";
    let failure = 0; // lines still to keep of a failure's stack
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (pending + chunk).split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        const url = /listening on (http:\/\/\S+)/.exec(line)?.[1];
        if (url) listening.resolve(url);
        if (/ failed:|error/i.test(line)) failure = 6;
        if (failure > 0 && failures.length < 60) {
          failures.push(line);
          failure--;
        }
      }
    }
    listening.reject(new Error("server exited before listening"));
  })();
  const timer = setTimeout(() => listening.reject(new Error("server did not listen within 60 s")), 60_000);
  try {
    const url = await listening.promise;
    for (let i = 0; (await fetch(`${url}/readyz`).then((r) => (r.body?.cancel(), r.status))) !== 200; i++) {
      if (i > 600) throw new Error("server not ready after 60 s");
      await sleep(100);
    }
    return { url, child, failures };
  } finally {
    clearTimeout(timer);
  }
}

/** The server's resident set (MiB) and open descriptors, from /proc. */
async function processFootprint(pid: number): Promise<{ rss_mb: number; fds: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  let fds = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) fds++;
  return { rss_mb: round2(rssKb / 1024), fds };
}

class Tally {
  readonly counts: Record<string, number> = {};
  add(key: string, n = 1) {
    this.counts[key] = (this.counts[key] ?? 0) + n;
  }
}

export async function bench(): Promise<Record<string, unknown>> {
  const seconds = Number(Deno.env.get("KESTREL_SOAK_SECONDS") ?? 180);
  const clients = Number(Deno.env.get("KESTREL_SOAK_CLIENTS") ?? 4);
  const dir = await Deno.makeTempDir({ prefix: "kestrel-bench-soak-" });
  const modelPath = join(dir, `${MODEL}.onnx`);
  await Deno.writeFile(modelPath, modelBytes(0));
  const names = await writeSynthDataset(join(dir, "set"), { n: 16, imgsz: IMGSZ, seed: 7 });
  const datasetFiles: Record<string, Uint8Array> = {};
  for (const name of names) {
    const stem = name.slice(0, name.lastIndexOf("."));
    datasetFiles[`images/${name}`] = await Deno.readFile(join(dir, "set", "images", name));
    datasetFiles[`labels/${stem}.txt`] = await Deno.readFile(join(dir, "set", "labels", `${stem}.txt`));
  }
  const dataset = zipDataset(datasetFiles);
  const image = datasetFiles[`images/${names[0]}`] as Uint8Array<ArrayBuffer>;
  const hostilePayloads = {
    negative_size_tar: negativeSizeTar(),
    lying_zip_bomb: lyingZipBomb(),
    traversal_zip: zipDataset({ "../../soak-escape.txt": new Uint8Array(8), ...datasetFiles }),
    external_data_onnx: externalDataModel(),
  };

  const server = await startServer(dir, modelPath);
  const base = `${server.url}/v1/models/${MODEL}`;
  const start = await processFootprint(server.child.pid);
  const statuses = new Tally(); // "<kind> <status>" for every answer
  const failedLegit = new Tally();
  const hostileAccepted = new Tally();
  const hostileUnanswered = new Tally();
  const latencies: number[] = [];
  let fiveHundreds = 0;
  let stop = false;

  /** One request; `ok` lists the statuses a legitimate caller expects (empty for hostile: any 4xx is right). */
  async function call(kind: string, url: string, init: RequestInit, ok: number[]): Promise<Response | null> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_LIMIT_MS) });
    } catch (err) {
      (ok.length > 0 ? failedLegit : hostileUnanswered).add(`${kind}: ${(err as Error).name}`);
      return null;
    }
    statuses.add(`${kind} ${res.status}`);
    if (res.status >= 500) fiveHundreds++;
    if (ok.length > 0 && !ok.includes(res.status)) failedLegit.add(`${kind} ${res.status}`);
    if (ok.length === 0 && res.status < 400) hostileAccepted.add(kind);
    return res;
  }

  async function detectClient() {
    while (!stop) {
      const t = performance.now();
      const res = await call("detect", `${base}/detect`, {
        method: "POST",
        body: image,
        headers: { "content-type": "image/png" },
      }, [200]);
      await res?.body?.cancel();
      if (res?.status === 200) latencies.push(performance.now() - t);
    }
  }

  let seed = 100;
  async function registryClient() {
    while (!stop) {
      const up = await call("upload", `${base}?activate=false`, {
        method: "POST",
        body: modelBytes(seed++),
        headers: { "content-type": "application/octet-stream" },
      }, [201]);
      const uploaded = up?.status === 201 ? (await up.json()).version : (await up?.body?.cancel(), undefined);
      if (uploaded !== undefined) {
        for (const version of [uploaded, 1]) {
          const res = await call("activate", `${base}/activate`, {
            method: "POST",
            body: JSON.stringify({ version }),
            headers: { "content-type": "application/json" },
          }, [200]);
          await res?.body?.cancel();
        }
        const del = await call("delete", `${base}/versions/${uploaded}`, { method: "DELETE" }, [204]);
        await del?.body?.cancel();
      }
      await sleep(2000);
    }
  }

  async function hostileClient() {
    const attacks: [string, () => Promise<Response | null>][] = [
      ["cross_site_upload", () =>
        call("cross_site_upload", `${base}?activate=true`, {
          method: "POST",
          body: modelBytes(1),
          headers: { "content-type": "text/plain", origin: "https://evil.example" },
        }, [])],
      ...Object.entries(hostilePayloads).map(([kind, bytes]): [string, () => Promise<Response | null>] => [
        kind,
        () => {
          if (kind.endsWith("onnx")) {
            return call(kind, base, {
              method: "POST",
              body: bytes,
              headers: { "content-type": "application/octet-stream" },
            }, []);
          }
          const form = new FormData();
          form.append("config", JSON.stringify(JOB_CONFIG));
          form.append("dataset", new File([bytes], kind.endsWith("tar") ? "d.tar" : "d.zip"));
          return call(kind, `${base}/finetune`, { method: "POST", body: form }, []);
        },
      ]),
      ["garbage_image", () =>
        call("garbage_image", `${base}/detect`, {
          method: "POST",
          body: "not an image",
          headers: { "content-type": "image/jpeg" },
        }, [])],
      ["oversized_body", () =>
        call("oversized_body", `${base}/detect`, {
          method: "POST",
          body: new Uint8Array(MAX_BODY_BYTES + 1),
          headers: { "content-type": "image/jpeg" },
        }, [])],
      ["junk_method", () => call("junk_method", `${server.url}/v1/models`, { method: "FOOBAR" }, [])],
      ["bad_json", () =>
        call("bad_json", `${base}/activate`, {
          method: "POST",
          body: "{",
          headers: { "content-type": "application/json" },
        }, [])],
    ];
    for (let i = 0; !stop; i++) {
      const res = await attacks[i % attacks.length][1]();
      await res?.body?.cancel();
      await sleep(500);
    }
  }

  async function fineTune(): Promise<string> {
    const form = new FormData();
    form.append("config", JSON.stringify(JOB_CONFIG));
    form.append("dataset", new File([dataset], "shapes.zip"));
    const res = await call("finetune", `${base}/finetune`, { method: "POST", body: form }, [202]);
    if (res?.status !== 202) {
      await res?.body?.cancel();
      return "not_queued";
    }
    const { id } = await res.json();
    const until = performance.now() + JOB_LIMIT_MS;
    while (performance.now() < until) {
      const poll = await call("job", `${server.url}/v1/jobs/${id}`, {}, [200]);
      if (poll?.status !== 200) {
        await poll?.body?.cancel();
        return "unreadable";
      }
      const job = await poll.json();
      if (!["queued", "running"].includes(job.status)) {
        if (job.status !== "succeeded") failedLegit.add(`finetune job ${job.status}`);
        return job.status;
      }
      await sleep(500);
    }
    failedLegit.add("finetune job timed out");
    return "timed_out";
  }

  const t0 = performance.now();
  const load = [
    ...Array.from({ length: clients }, detectClient),
    registryClient(),
    hostileClient(),
  ];
  const jobs: string[] = [];
  let afterWarmup: { rss_mb: number; fds: number } | undefined;
  let warmupDetects = 0;
  try {
    jobs.push(await fineTune());
    await sleep(Math.max(0, seconds * 250 - (performance.now() - t0)));
    afterWarmup = await processFootprint(server.child.pid);
    warmupDetects = latencies.length;
    jobs.push(await fineTune());
    await sleep(Math.max(0, seconds * 1000 - (performance.now() - t0)));
  } finally {
    stop = true;
    await Promise.all(load);
  }
  const end = await processFootprint(server.child.pid);
  const elapsed = (performance.now() - t0) / 1000;
  server.child.kill("SIGTERM");
  const exited = await Promise.race([server.child.status.then(() => true), sleep(15_000).then(() => false)]);
  if (!exited) server.child.kill("SIGKILL");
  await server.child.status;
  const escaped = await Deno.stat(join(dir, "..", "..", "soak-escape.txt")).then(() => true, () => false);
  await Deno.remove(dir, { recursive: true });

  const servedAfterWarmup = latencies.slice(warmupDetects);
  const at = (p: number) => round2(quantile(servedAfterWarmup, p));
  return {
    seconds: round2(elapsed),
    detect_clients: clients,
    requests: Object.values(statuses.counts).reduce((a, b) => a + b, 0),
    detect_served: latencies.length,
    detect_after_warmup_ms: { n: servedAfterWarmup.length, p50: at(0.5), p99: at(0.99), max: at(1) },
    server_5xx: fiveHundreds,
    failed_legitimate: failedLegit.counts,
    hostile_accepted: hostileAccepted.counts,
    hostile_unanswered: hostileUnanswered.counts,
    file_escaped_staging: escaped,
    jobs,
    answers: statuses.counts,
    rss_mb: { start: start.rss_mb, after_warmup: afterWarmup?.rss_mb, end: end.rss_mb },
    rss_growth_after_warmup: afterWarmup ? round2(end.rss_mb / afterWarmup.rss_mb - 1) : null,
    fds: { start: start.fds, after_warmup: afterWarmup?.fds, end: end.fds },
    clean_exit_on_sigterm: exited,
    ...(fiveHundreds > 0 ? { server_failure_log: server.failures } : {}),
  };
}
