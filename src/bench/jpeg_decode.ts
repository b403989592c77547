/**
 * jpeg_decode: the decode stage alone, for each reference JPEG (bus.jpg, zidane.jpg), with each decoder the
 * server can use: sharp (libvips) and libturbojpeg over FFI (src/image/turbojpeg.ts). Per decode: median wall
 * time, and CPU time of the whole process (decoder threads included) — the figure other load on the box moves
 * least. One decode at a time, then two at once (what 2 cores serving 4 clients see).
 */
import process from "node:process";
import { missingReferenceFiles, missingReferenceMessage, referencePath } from "../config/reference_dir.ts";
import { createImageDecoder, DEFAULT_MAX_PIXELS } from "../image/decode.ts";
import { sharpDecode } from "../image/sharp_decode.ts";

const IMAGES = ["bus.jpg", "zidane.jpg"];
const WARMUP = 5;
const DECODES = 60;

const round = (v: number) => Math.round(v * 100) / 100;

/** Median wall ms of one decode and process CPU ms per decode, `parallel` decodes in flight at a time. */
async function measure(decode: () => Promise<unknown>, parallel: number) {
  for (let i = 0; i < WARMUP; i++) await decode();
  const walls: number[] = [];
  const cpuBefore = process.cpuUsage();
  for (let i = 0; i < DECODES; i += parallel) {
    const start = performance.now();
    await Promise.all(Array.from({ length: parallel }, decode));
    walls.push(performance.now() - start);
  }
  const cpu = process.cpuUsage(cpuBefore);
  walls.sort((a, b) => a - b);
  return {
    wall_ms: round(walls[Math.floor(walls.length / 2)]),
    cpu_ms_per_decode: round((cpu.user + cpu.system) / 1000 / DECODES),
  };
}

export async function bench(): Promise<Record<string, unknown>> {
  const missing = missingReferenceFiles(IMAGES.map((name) => `images/${name}`));
  if (missing.length) return { skipped: missingReferenceMessage(missing) };
  const decoder = createImageDecoder();
  if (!decoder.jpegDecoder.startsWith("turbojpeg")) return { skipped: decoder.jpegDecoder };
  const result: Record<string, unknown> = { turbojpeg: decoder.jpegDecoder };
  for (const name of IMAGES) {
    const jpeg = await Deno.readFile(referencePath(`images/${name}`));
    const decoders = {
      sharp: () => sharpDecode(jpeg, DEFAULT_MAX_PIXELS),
      turbojpeg: () => decoder.decode(jpeg),
    };
    const runs: Record<string, unknown> = {};
    for (const parallel of [1, 2]) {
      for (const [which, decode] of Object.entries(decoders)) {
        runs[`${which}_${parallel === 1 ? "one" : "two_at_once"}`] = await measure(decode, parallel);
      }
    }
    result[name] = runs;
  }
  return result;
}
