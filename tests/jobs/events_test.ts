import assert from "node:assert/strict";
import { type JobEvent, JobEventHub, streamEvents } from "../../src/jobs/events.ts";
import type { Job, JobStatus } from "../../src/jobs/types.ts";

function event(type: JobEvent["type"], id: string, status: JobStatus, iteration = 0): JobEvent {
  return { type, job: { id, status, progress: { iteration } } as Job };
}

const describe = (e: JobEvent) => `${e.type}:${e.job.id}:${e.job.status}:${e.job.progress.iteration}`;

Deno.test("streamEvents() starts with the snapshot, follows one job, collapses progress, ends on terminal", async () => {
  const hub = new JobEventHub();
  const stream = streamEvents(hub, { jobId: "a", initial: [event("status", "a", "running")] });
  const first = await stream.next();
  assert.equal(describe(first.value as JobEvent), "status:a:running:0");
  // Published while the reader is away: three progress events in a row collapse into the newest.
  for (let i = 1; i <= 3; i++) hub.publish(event("progress", "a", "running", i));
  hub.publish(event("progress", "b", "running", 9));
  hub.publish(event("status", "a", "succeeded", 3));
  hub.publish(event("status", "a", "succeeded", 3));
  const rest: string[] = [];
  for await (const e of stream) rest.push(describe(e));
  assert.deepEqual(rest, ["progress:a:running:3", "status:a:succeeded:3"]);
});

Deno.test("streamEvents() of all jobs runs until its signal aborts and then unsubscribes", async () => {
  const hub = new JobEventHub();
  const controller = new AbortController();
  const seen: string[] = [];
  const reading = (async () => {
    for await (const e of streamEvents(hub, { initial: [], signal: controller.signal })) {
      seen.push(describe(e));
      if (seen.length === 2) controller.abort();
    }
  })();
  await Promise.resolve();
  hub.publish(event("status", "a", "succeeded"));
  hub.publish(event("status", "b", "queued"));
  await reading;
  assert.deepEqual(seen, ["status:a:succeeded:0", "status:b:queued:0"]);
  let calls = 0;
  hub.subscribe(() => calls++);
  hub.publish(event("status", "c", "queued"));
  assert.equal(calls, 1, "only the new listener remains");
});
