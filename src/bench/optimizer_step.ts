/**
 * Adam step over 10M parameters (grad norm + clip + update + zero grads) in GB/s of memory traffic, beside the
 * adapter's plain copyBufferToBuffer GB/s of a same-size buffer, both timed in this run the same way: several
 * operations per submit, so the fixed submit+sync cost (~11.5 ms on lavapipe) is amortised.
 * On lavapipe (Mesa 22.3) every storage access of a shader is a per-lane scalar loop costing ~1 ns of CPU, so the
 * step is bound by its 9 accesses per parameter spread over the cores, while the copy is one memcpy thread: the
 * ratio therefore moves with the load other processes put on the cores.
 */
import { getGpu } from "../gpu/device.ts";
import { createStorage } from "../gpu/buffers.ts";
import { ProgramCache } from "../gpu/programs.ts";
import { streamChunk } from "../gpu/runs.ts";
import { Optimizer } from "../optim/optimizer.ts";
import type { LayoutEntry } from "../optim/groups.ts";

const PARAMS = 10_000_000;
const REPEATS = 8;

/**
 * Bytes one full Adam step moves per parameter: the norm pass reads the gradient (4); the update reads and writes
 * params, m and v (24), reads the gradient and writes it back as zero (8). The 2-bit group tags add 1/16 byte.
 */
const STEP_BYTES_PER_PARAM = 36;
/** A copy reads and writes every byte. */
const COPY_BYTES_PER_PARAM = 8;

/** Milliseconds per operation over one submit of `perSubmit` operations. */
async function timed(device: GPUDevice, record: (encoder: GPUCommandEncoder) => void, perSubmit: number) {
  const encoder = device.createCommandEncoder();
  for (let k = 0; k < perSubmit; k++) record(encoder);
  const t0 = performance.now();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / perSubmit;
}

export async function bench(): Promise<Record<string, unknown>> {
  const { device, adapterName, isFallback } = await getGpu();
  const perSubmit = isFallback ? 6 : 50;
  const layout: LayoutEntry[] = [
    { name: "weight", shape: [PARAMS], offset: 0, size: PARAMS, role: "weight", group: 1, frozen: false },
  ];
  const params = createStorage(device, PARAMS * 4, "bench.params");
  const grads = createStorage(device, PARAMS * 4, "bench.grads");
  const copy = createStorage(device, PARAMS * 4, "bench.copy");
  const optimizer = new Optimizer(device, new ProgramCache(device), layout, { params, grads }, {
    kind: "Adam",
    weightDecay: 5e-4,
    chunk: streamChunk(isFallback),
  });
  const hyper = { lr: [1e-3, 1e-3, 1e-3], momentum: [0.937, 0.937, 0.937] };
  const step = (encoder: GPUCommandEncoder) => optimizer.step(encoder, hyper);
  const copyOnce = (encoder: GPUCommandEncoder) => encoder.copyBufferToBuffer(params, 0, copy, 0, PARAMS * 4);
  await timed(device, step, 1);
  await timed(device, copyOnce, 1);
  // Interleaved, so that load from other processes on a shared machine hits both measurements alike.
  let stepMs = Infinity, copyMs = Infinity;
  for (let r = 0; r < REPEATS; r++) {
    stepMs = Math.min(stepMs, await timed(device, step, perSubmit));
    copyMs = Math.min(copyMs, await timed(device, copyOnce, perSubmit));
  }
  optimizer.destroy();
  for (const b of [params, grads, copy]) b.destroy();
  const stepGbps = (PARAMS * STEP_BYTES_PER_PARAM) / (stepMs * 1e6);
  const copyGbps = (PARAMS * COPY_BYTES_PER_PARAM) / (copyMs * 1e6);
  return {
    adapter: adapterName,
    params: PARAMS,
    adam_step_ms: Number(stepMs.toFixed(2)),
    adam_step_gbps: Number(stepGbps.toFixed(2)),
    copy_ms: Number(copyMs.toFixed(2)),
    copy_gbps: Number(copyGbps.toFixed(2)),
    ratio: Number((stepGbps / copyGbps).toFixed(3)),
    load_average_1m: Deno.loadavg()[0],
    bytes_counted: "step: params r+w, m r+w, v r+w, grads r (norm) + r (update) + w (zeroed); copy: r+w",
  };
}
