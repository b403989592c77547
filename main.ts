// Kestrel's one entry point: `deno run -A main.ts <command> [flags]`. Wiring only: each command lives in src/cli/.
const commands: Record<string, () => Promise<{ run(args: string[]): Promise<number> }>> = {
  serve: () => import("./src/cli/serve.ts"),
  detect: () => import("./src/cli/detect.ts"),
  finetune: () => import("./src/cli/finetune.ts"),
  bench: () => import("./src/cli/bench.ts"),
  "new-model": () => import("./src/cli/new_model.ts"),
  synth: () => import("./src/cli/synth.ts"),
  bundle: () => import("./src/cli/bundle.ts"),
  "gpu-bench-package": () => import("./src/cli/gpu_bench_package.ts"),
  doctor: () => import("./src/cli/doctor.ts"),
};

import { forcedKernelFamily } from "./src/ops/kernel_family.ts";
import { ensureRuntimeDir } from "./src/gpu/runtime_dir.ts";

// Set while the process has one thread: the WebGPU code sets XDG_RUNTIME_DIR where it is missing, and a setenv in
// a worker (the trainer's) racing getenv in another (onnxruntime's, sharp's) can crash glibc.
ensureRuntimeDir();

// Environment settings every command reads are checked before any command starts.
try {
  forcedKernelFamily();
} catch (err) {
  console.error((err as Error).message);
  Deno.exit(2);
}

const [name, ...rest] = Deno.args;
const load = commands[name ?? "serve"];
if (!load) {
  console.error(`Unknown command '${name}'. Commands: ${Object.keys(commands).join(", ")}`);
  Deno.exit(2);
}
Deno.exit(await (await load()).run(rest));
