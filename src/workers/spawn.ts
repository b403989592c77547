/**
 * Kestrel's Web Workers, and the process exit that first ends them and waits for their threads to be gone.
 *
 * `Worker.terminate()` only asks a worker's thread to stop: the thread then tears down its runtime on its own,
 * and with it the native code it holds: a WebGPU instance and device (Mesa lavapipe: EGL and Vulkan teardown,
 * joining the llvmpipe threads, unloading the driver) or onnxruntime-node sessions. Deno exits without waiting
 * for that thread. When the process exits while a WebGPU worker is still tearing down, libc's exit handlers
 * race it: 1 to 5 exits in 100 on a 2-core box ended in SIGSEGV or a glibc abort ("corrupted double-linked
 * list", "corrupted size vs. prev_size in fastbins"), the main thread in `exit()` calling a handler of a library
 * the worker thread had just unloaded; 3 in 200 SIGTERM drains of a server with a fine-tune running printed
 * "stopped" and then aborted so. (Exits right after inference workers ended did not crash in 500 tries; they
 * are waited for all the same.) So the first worker started here also registers an `unload` listener (Deno
 * dispatches `unload` on `Deno.exit()` and at the natural end of a program and of `deno test`) that terminates
 * every worker started here still running (owners end theirs when done: a job ends, a model is released, the
 * server drains; a drain cut off mid-publish leaves its trainer's) and blocks until no worker thread is left, at
 * most EXIT_WAIT_MS. Threads still there then are counted on stderr, and the process exits anyway: one stuck in a
 * native call, or one busy in JavaScript, which terminate() does not stop in Deno 2.9 (owners of such work stop
 * it themselves: an aborted unpack's worker checks a shared cancel flag, src/train/data/archive.ts).
 *
 * A worker's thread is the one `new Worker()` adds to /proc/self/task (Deno starts it there and then; a thread
 * another one starts in that same instant is taken for one too, and waited for as long at most); the exit
 * waits for those threads only, not for the threads they started (onnxruntime's pool of a session never
 * released lives on, idle, under the worker's thread name). Without /proc (not Linux) no thread is seen and the
 * exit does not wait.
 * @module
 */

/** Longest wait at exit for worker threads to end: a terminated worker ends in milliseconds, one in the middle
 * of a training step's GPU work (seconds at batch 8 on lavapipe) only once the step's native call returns. */
const EXIT_WAIT_MS = 3_000;
/** How often the exit re-reads the threads while it waits. */
const EXIT_POLL_MS = 2;
const TASKS = "/proc/self/task";

/** Workers started here that the exit terminates if still running; weak, so an ended one is not kept. */
const started = new Set<WeakRef<Worker>>();
/** Their threads: thread id -> start time (a thread id can be reused once its thread is gone). */
const threads = new Map<string, string>();
let exitEndsWorkers = false;

/**
 * Starts a module worker that the process's exit ends and waits for (see the module doc). For the main thread
 * only: a worker's own exit would wait for its own thread.
 */
export function spawnWorker(url: URL): Worker {
  if (!exitEndsWorkers) {
    exitEndsWorkers = true;
    globalThis.addEventListener("unload", endWorkers);
  }
  for (const ref of started) if (!ref.deref()) started.delete(ref);
  liveWorkerThreads();
  const before = new Set(taskIds());
  const worker = new Worker(url, { type: "module" });
  for (const id of taskIds()) {
    const start = before.has(id) ? null : startTime(id);
    if (start !== null) threads.set(id, start);
  }
  started.add(new WeakRef(worker));
  return worker;
}

/** Threads of the workers started here still alive (ending ones included); forgets those that ended. */
export function liveWorkerThreads(): number {
  for (const [id, start] of threads) if (startTime(id) !== start) threads.delete(id);
  return threads.size;
}

function taskIds(): string[] {
  try {
    return [...Deno.readDirSync(TASKS)].map((task) => task.name);
  } catch {
    return [];
  }
}

/** When thread `id` started (field 22 of its stat, after the parenthesized name), or null once it is gone. */
function startTime(id: string): string | null {
  try {
    const stat = Deno.readTextFileSync(`${TASKS}/${id}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return null;
  }
}

/**
 * Terminates the workers still running (terminating an ended one does nothing), then blocks until their threads
 * are gone or EXIT_WAIT_MS passed. Synchronous: `unload` listeners run as the process goes, with no event loop
 * left to await on, and a worker's thread ends without the main thread's help.
 */
function endWorkers(): void {
  for (const ref of started) ref.deref()?.terminate();
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const deadline = performance.now() + EXIT_WAIT_MS;
  let running = liveWorkerThreads();
  while (running > 0 && performance.now() < deadline) {
    Atomics.wait(nap, 0, 0, EXIT_POLL_MS);
    running = liveWorkerThreads();
  }
  if (running > 0) {
    console.error(`exit: ${running} worker thread(s) still running after ${EXIT_WAIT_MS} ms; exiting anyway`);
  }
}
