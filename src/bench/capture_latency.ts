/**
 * capture_latency: what capture costs detect. POSTs 320x320 JPEGs to the native detect route of the embedded
 * default model with the model's capture policy `off` and `all` (the worst case: every frame is written) in
 * interleaved blocks, so both see the same machine load, and reports detect p50/p99 for each, with how many
 * frames were stored or dropped while capturing.
 */
import sharp from "sharp";
import { startServer } from "../api/server.ts";
import { ServerConfigSchema } from "../config/server.ts";
import { Rng } from "../train/data/rng.ts";
import { synthImage } from "../train/synth.ts";

const FRAME = 320;
const FRAMES = 8;
const WARMUP = 10;
const ITERATIONS = 400;
const BLOCK = 20;
/** Enough for every frame of the run: the bench measures writing, not the hourly limit. */
const MAX_PER_HOUR = 1_000_000;

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const round = (v: number) => Math.round(v * 100) / 100;

export async function bench(): Promise<Record<string, unknown>> {
  const jpegs = await Promise.all(Array.from({ length: FRAMES }, async (_, i) => {
    const { rgb } = synthImage(FRAME, new Rng(200 + i));
    const raw = { width: FRAME, height: FRAME, channels: 3 as const };
    return new Uint8Array(await sharp(rgb, { raw }).jpeg({ quality: 75 }).toBuffer());
  }));
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-bench-capture-" });
  const server = await startServer(ServerConfigSchema.parse({ port: 0, backend: "native", dataDir }));
  try {
    await server.ready;
    const model = server.pool.list()[0].ref.name;
    const setMode = async (mode: "off" | "all") => {
      const res = await fetch(`${server.url}/v1/models/${model}/capture`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ mode, max_per_hour: MAX_PER_HOUR }),
      });
      if (res.status !== 200) throw new Error(`PUT capture: ${res.status} ${await res.text()}`);
    };
    let next = 0;
    const detect = async () => {
      const t = performance.now();
      const res = await fetch(`${server.url}/v1/models/${model}/detect`, {
        method: "POST",
        headers: { "content-type": "image/jpeg" },
        body: jpegs[next++ % jpegs.length],
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`detect: ${res.status}`);
      return performance.now() - t;
    };
    for (let i = 0; i < WARMUP; i++) await detect();
    const off: number[] = [], on: number[] = [];
    for (let block = 0; block < ITERATIONS / BLOCK; block++) {
      const capturing = block % 2 === 1;
      await setMode(capturing ? "all" : "off");
      for (let i = 0; i < BLOCK; i++) (capturing ? on : off).push(await detect());
    }
    await setMode("off");
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const counter = (name: string) =>
      [...metrics.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, "gm"))]
        .reduce((sum, m) => sum + Number(m[1]), 0);
    return {
      model,
      frame: `${FRAME}x${FRAME} jpeg`,
      requests_per_mode: off.length,
      capture_off_ms: { p50: round(percentile(off, 50)), p99: round(percentile(off, 99)) },
      capture_all_ms: { p50: round(percentile(on, 50)), p99: round(percentile(on, 99)) },
      stored: counter("kestrel_capture_stored_total"),
      dropped: counter("kestrel_capture_dropped_total"),
    };
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
}
