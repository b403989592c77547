/**
 * A process that ends right after its workers did, as the server does after a drain:
 * `deno run -A tests/workers/_exit_child.ts <gpu|gpu-running|inference|inference-unreleased> <exit|end>`. `gpu` starts a worker
 * holding a WebGPU device (_gpu_worker.ts) and terminates it once it is ready; `gpu-running` leaves it running
 * (for the exit to end; only with `exit`: a running worker keeps a program from ending); `inference` opens a
 * native WorkerSession (the server's inference workers, onnxruntime-node) on the embedded model, runs one detect
 * and releases it; `inference-unreleased` does not (only with `exit`), which leaves onnxruntime's thread pools
 * behind, idle, once the exit ended the workers. `exit` then calls Deno.exit(0) at once, `end` lets the program end. Its last `unload`
 * listener prints how many worker threads were still alive once the exit's own (src/workers/spawn.ts) was done.
 * @module
 */
// Loaded on this thread before any worker starts, as the server's and the CLI's main threads do: libvips' first
// load calls setenv(), which crashed a worker reading the environment at the same time (SIGSEGV in getenv, 1
// start in ~1000) when two inference workers were the first to load it.
import "../../src/image/decode.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { DEFAULT_DETECT_OPTIONS } from "../../src/serving/postprocess.ts";
import { liveWorkerThreads, spawnWorker } from "../../src/workers/spawn.ts";

const [what, how] = Deno.args;
if (what === "gpu" || what === "gpu-running") {
  const worker = spawnWorker(new URL("./_gpu_worker.ts", import.meta.url));
  await new Promise((resolve, reject) => {
    worker.onmessage = resolve;
    worker.onerror = (e) => reject(new Error(e.message));
  });
  if (what === "gpu") worker.terminate();
} else if (what === "inference" || what === "inference-unreleased") {
  const model = await Deno.readFile(new URL("../../models/default.onnx", import.meta.url));
  const image = await Deno.readFile(new URL("../fixtures/shapes/images/shapes_0000.png", import.meta.url));
  const session = await nativeBackend.createSession(model, "images", "output0");
  await session.detectImage!({ bytes: image, imgsz: 128, nc: 3, opts: DEFAULT_DETECT_OPTIONS });
  if (what === "inference") await session.release();
} else {throw new Error(
    `usage: _exit_child.ts <gpu|gpu-running|inference|inference-unreleased> <exit|end>, not ${
      Deno.args.join(" ")
    }`,
  );}

// Registered after spawnWorker's listener, so it runs after the exit ended the workers.
globalThis.addEventListener("unload", () => console.log(`worker threads at exit: ${liveWorkerThreads()}`));
if (how === "exit") Deno.exit(0);
