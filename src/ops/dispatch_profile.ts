/**
 * Per-dispatch GPU time of a recorded step, from timestamp queries (adapters with `timestamp-query`): each
 * dispatch runs in its own compute pass whose begin and end are timestamped, all in one submit, so the sum
 * approximates the step's GPU time and the top entries show where it goes.
 */
import type { Dispatch } from "./types.ts";

export interface DispatchTime {
  label: string;
  ms: number;
  gflops: number;
}

/** Times every dispatch of `dispatches` once (after one untimed warm-up replay); sorted slowest first. */
export async function profileDispatches(device: GPUDevice, dispatches: Dispatch[]): Promise<DispatchTime[]> {
  const count = 2 * dispatches.length;
  const querySet = device.createQuerySet({ type: "timestamp", count });
  const resolved = device.createBuffer({
    size: 8 * count,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const staging = device.createBuffer({
    size: 8 * count,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  let ticks: BigInt64Array = new BigInt64Array(count);
  for (let replay = 0; replay < 2; replay++) {
    const encoder = device.createCommandEncoder({ label: "dispatch profile" });
    dispatches.forEach((d, i) => {
      const pass = encoder.beginComputePass({
        timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(...d.workgroups);
      pass.end();
    });
    encoder.resolveQuerySet(querySet, 0, count, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, 8 * count);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    ticks = new BigInt64Array(staging.getMappedRange().slice(0));
    staging.unmap();
  }
  querySet.destroy();
  resolved.destroy();
  staging.destroy();
  return dispatches.map((d, i) => {
    const ms = Number(ticks[2 * i + 1] - ticks[2 * i]) / 1e6;
    return { label: d.label, ms: +ms.toFixed(2), gflops: +((d.flops ?? 0) / ms / 1e6).toFixed(2) };
  }).sort((a, b) => b.ms - a.ms);
}
