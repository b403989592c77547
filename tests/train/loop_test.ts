// The training loop's contract (issue 6): one submit per step with nothing created inside the loop, the trace
// following train.py's schedule, exact resume from an epoch or a mid-epoch (suspend) checkpoint, cancellation
// between iterations, and event-loop turns between iterations. A tiny model (1x1 head convs on the image) keeps each run to milliseconds.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import { Schedule } from "../../src/optim/schedule.ts";
import type { TraceLine } from "../../src/optim/trace.ts";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { FinetuneSession } from "../../src/train/finetune.ts";
import { epochStart, type LoopPosition, prefetch } from "../../src/train/loop.ts";
import { synthDir, testGpu, tinyConfig, tinyModel } from "./_finetune.ts";

// 8 images in batches of 3: nb = 3 with a short last batch; nw = 100 keeps every iteration in warmup, where
// accumulate grows from 1 to 2, so epochs end with partial accumulations that zero_grad must discard.
const dir = await synthDir(8, 64);
const dataset = await loadDataset(dir, { nc: 3 });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

async function session(device: GPUDevice, epochs = 3) {
  const config = tinyConfig({ epochs, hyp: { lr0: 0.05 } });
  return await FinetuneSession.create({
    gpu: testGpu(device),
    model: tinyModel(),
    config,
    train: dataset.train,
  });
}

gpuTest(
  "one submit per iteration; no buffer, bind group or pipeline is created inside the loop",
  async (device) => {
    const s = await session(device);
    const counts = { submit: 0, buffer: 0, bindGroup: 0, pipeline: 0 };
    const queue = device.queue as GPUQueue & Record<string, unknown>;
    const dev = device as GPUDevice & Record<string, unknown>;
    const submit = queue.submit.bind(queue);
    const [createBuffer, createBindGroup, createPipeline] = [
      device.createBuffer.bind(device),
      device.createBindGroup.bind(device),
      device.createComputePipeline.bind(device),
    ];
    queue.submit = (b: GPUCommandBuffer[]) => (counts.submit++, submit(b));
    dev.createBuffer = (d: GPUBufferDescriptor) => (counts.buffer++, createBuffer(d));
    dev.createBindGroup = (d: GPUBindGroupDescriptor) => (counts.bindGroup++, createBindGroup(d));
    dev.createComputePipeline = (d: GPUComputePipelineDescriptor) => (counts.pipeline++, createPipeline(d));
    let result;
    try {
      result = await s.train();
    } finally {
      for (const k of ["submit"]) delete queue[k];
      for (const k of ["createBuffer", "createBindGroup", "createComputePipeline"]) delete dev[k];
    }
    assert.equal(result.iterations, 9);
    assert.deepEqual(counts, { submit: 9, buffer: 0, bindGroup: 0, pipeline: 0 });
  },
);

gpuTest(
  "trace lines carry train.py's schedule (accumulate, stepped, lr, momentum) and finite losses",
  async (device) => {
    const s = await session(device);
    const trace: TraceLine[] = [];
    await s.train({ onIteration: ({ line }) => trace.push(line) });
    const schedule = new Schedule(s.optimizer.settings);
    let k = 0;
    for (let epoch = 0; epoch < 3; epoch++) {
      for (let i = 0; i < 3; i++, k++) {
        const plan = schedule.iteration(epoch, i);
        const line = trace[k];
        assert.deepEqual(
          [line.ni, line.epoch, line.i, line.accumulate, line.stepped, line.lr, line.momentum],
          [plan.ni, epoch, i, plan.accumulate, plan.stepped, plan.lr, plan.momentum],
        );
        assert.ok(line.loss_items.every(Number.isFinite) && line.loss > 0);
        assert.equal(line.grad_norm !== null, plan.stepped);
      }
      schedule.endEpoch(epoch);
    }
    assert.ok(trace.some((l) => !l.stepped), "the run should include accumulate-only iterations");
  },
);

gpuTest("resuming from an epoch checkpoint reproduces the uninterrupted run exactly", async (device) => {
  const whole = await session(device);
  const wholeTrace: TraceLine[] = [];
  await whole.train({ onIteration: ({ line }) => wholeTrace.push(line) });

  const first = await session(device);
  const stop = new AbortController();
  let state: Uint8Array | undefined;
  await assert.rejects(
    first.train({
      signal: stop.signal,
      onEpochEnd: async (epoch) => {
        if (epoch === 1) {
          state = await first.checkpoint(epochStart(epoch + 1));
          stop.abort(new Error("stop after epoch 1"));
        }
      },
    }),
    /stop after epoch 1/,
  );
  const resumed = await session(device);
  const start = resumed.restore(state!);
  assert.deepEqual(start, epochStart(2));
  const resumedTrace: TraceLine[] = [];
  await resumed.train({ start, onIteration: ({ line }) => resumedTrace.push(line) });

  assert.deepEqual(resumedTrace, wholeTrace.slice(6));
  const read = (b: GPUBuffer) => readF32(device, b, whole.layout.size);
  assert.deepEqual(await read(resumed.params), await read(whole.params));
  assert.deepEqual(await read(resumed.emaParams), await read(whole.emaParams));
});

// Epoch 1 is ni 3..5: ni 3 is an accumulate-only iteration (accumulate 2) whose gradients ni 4's step sums in,
// so a state without the gradients would step with half of them.
gpuTest(
  "a suspend mid-window saves a state the run resumes from exactly: weights, EMA, optimizer",
  async (device) => {
    const whole = await session(device);
    const wholeTrace: TraceLine[] = [];
    await whole.train({ onIteration: ({ line }) => wholeTrace.push(line) });
    assert.deepEqual(
      wholeTrace.slice(3, 5).map((l) => [l.epoch, l.i, l.stepped]),
      [[1, 0, false], [1, 1, true]],
      "the suspend lands inside an accumulation window",
    );

    const first = await session(device);
    const suspend = new AbortController();
    const reason = new DOMException("server stopping", "AbortError");
    let saved: { position: LoopPosition; state: Uint8Array } | undefined;
    await assert.rejects(
      first.train({
        suspend: suspend.signal,
        onIteration: ({ line }) => {
          if (line.ni === 3) suspend.abort(reason);
        },
        onSuspend: async (position) => {
          saved = { position, state: await first.checkpoint(position) };
        },
      }),
      (err) => err === reason,
    );
    assert.deepEqual([saved!.position.epoch, saved!.position.iteration], [1, 1]);

    const resumed = await session(device);
    const start = resumed.restore(saved!.state);
    assert.deepEqual(start, saved!.position);
    const resumedTrace: TraceLine[] = [];
    await resumed.train({ start, onIteration: ({ line }) => resumedTrace.push(line) });

    assert.deepEqual(resumedTrace, wholeTrace.slice(4));
    const read = (b: GPUBuffer) => readF32(device, b, whole.layout.size);
    assert.deepEqual(await read(resumed.params), await read(whole.params));
    assert.deepEqual(await read(resumed.emaParams), await read(whole.emaParams));
    const moments = (s: FinetuneSession) => Promise.all(s.optimizer.optimizer.state.map(read));
    assert.deepEqual(await moments(resumed), await moments(whole));
    assert.equal(resumed.optimizer.optimizer.steps, whole.optimizer.optimizer.steps);
  },
);

gpuTest("a suspend before the first iteration stops at once and saves nothing", async (device) => {
  const s = await session(device);
  const suspend = new AbortController();
  const reason = new DOMException("server stopping", "AbortError");
  suspend.abort(reason);
  let iterations = 0, saves = 0;
  await assert.rejects(
    s.train({
      suspend: suspend.signal,
      onIteration: () => iterations++,
      onSuspend: () => Promise.resolve(void saves++),
    }),
    (err) => err === reason,
  );
  assert.deepEqual([iterations, saves], [0, 0]);
});

gpuTest("aborting stops between iterations and rejects with the signal's reason", async (device) => {
  const s = await session(device);
  const controller = new AbortController();
  let iterations = 0;
  const reason = new DOMException("cancelled by test", "AbortError");
  await assert.rejects(
    s.train({
      signal: controller.signal,
      onIteration: () => {
        if (++iterations === 2) controller.abort(reason);
      },
    }),
    (err) => err === reason,
  );
  assert.equal(iterations, 2);
});

gpuTest("timers run between iterations (a server training in-process keeps serving)", async (device) => {
  const s = await session(device);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  const seen: number[] = [];
  try {
    await s.train({ onIteration: () => seen.push(ticks) });
  } finally {
    clearInterval(timer);
  }
  // ticks observed at the start of each later iteration must have advanced past the previous one's
  const advanced = seen.slice(1).filter((t, k) => t > seen[k]).length;
  assert.equal(advanced, seen.length - 1, `timer ticks at each iteration: ${seen}`);
});

Deno.test("prefetch asks for the next item before the consumer is done with the current one", async () => {
  const log: string[] = [];
  async function* source() {
    for (let k = 0; k < 3; k++) {
      log.push(`make ${k}`);
      await Promise.resolve();
      yield k;
    }
  }
  const seen: number[] = [];
  for await (const k of prefetch(source())) {
    await new Promise((r) => setTimeout(r, 1));
    log.push(`use ${k}`);
    seen.push(k);
  }
  assert.deepEqual(seen, [0, 1, 2]);
  assert.deepEqual(log, ["make 0", "make 1", "use 0", "make 2", "use 1", "use 2"]);
});

Deno.test("prefetch passes a failing batch on to the consumer and closes the source on an early exit", async () => {
  async function* failing() {
    yield 0;
    throw new Error("image does not decode");
  }
  await assert.rejects(async () => {
    for await (const _ of prefetch(failing())) await new Promise((r) => setTimeout(r, 1));
  }, /image does not decode/);
  let closed = false;
  async function* endless() {
    try {
      for (let k = 0;; k++) yield k;
    } finally {
      closed = true;
    }
  }
  for await (const k of prefetch(endless())) if (k === 2) break;
  assert.ok(closed);
});
