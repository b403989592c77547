/**
 * The server's startup self-test: `kestrel doctor`'s detect check on the backend the server chose, before it
 * serves anything. A GPU that fails it (a driver that computes garbage, a WebGPU stack that cannot run the model)
 * must not answer detections: the server falls back to CPU inference instead.
 */
import { DEFAULT_MODEL_PATH } from "../config/server.ts";
import type { Backend } from "../serving/backend.ts";
import { nativeBackend } from "../serving/backends/native.ts";
import { wasmBackend } from "../serving/backends/web.ts";
import { readModelSpec } from "../serving/model_spec.ts";
import type { BackendSelection } from "../serving/select.ts";
import { type CheckResult, detectCheck, testImage } from "./self_test.ts";

/** The backend to serve with, and why: the selection's reason followed by what the self-test found. */
export interface TestedBackend extends BackendSelection {
  /** False when no backend passed: the server serves on the chosen one anyway and logs an error. */
  passed: boolean;
}

/** Runs `check`; a backend that throws (a session that cannot be created) fails with the message. */
async function attempt(check: (b: Backend) => Promise<CheckResult>, backend: Backend): Promise<CheckResult> {
  try {
    return await check(backend);
  } catch (err) {
    return { ok: false, detail: `${backend.name}: ${(err as Error).message}` };
  }
}

/** The doctor's detect check on the bundled default model (one synthetic image, every drawn shape found). */
export async function defaultModelCheck(): Promise<(backend: Backend) => Promise<CheckResult>> {
  const modelBytes = await Deno.readFile(DEFAULT_MODEL_PATH);
  const image = await testImage(readModelSpec(modelBytes, "the default model").imgsz);
  return (backend) => detectCheck(backend, modelBytes, image);
}

/**
 * Self-tests `selection`'s backend. A webgpu backend that fails is replaced by the first CPU backend that passes
 * (`cpu`, default native then wasm, as `auto` orders them); a CPU backend that fails has nothing better to fall
 * back to and is kept.
 */
export async function selfTestBackend(
  selection: BackendSelection,
  check: (b: Backend) => Promise<CheckResult>,
  cpu: readonly Backend[] = [nativeBackend, wasmBackend],
): Promise<TestedBackend> {
  const first = await attempt(check, selection.backend);
  if (first.ok) {
    return { ...selection, reason: `${selection.reason}; self-test passed (${first.detail})`, passed: true };
  }
  if (selection.backend.name !== "webgpu") {
    return { ...selection, reason: `${selection.reason}; self-test FAILED (${first.detail})`, passed: false };
  }
  const failed = [first.detail];
  for (const backend of cpu) {
    const result = await attempt(check, backend);
    if (result.ok) {
      return {
        backend,
        reason: `${selection.reason}; self-test FAILED (${failed.join("; ")}); ` +
          `fell back to ${backend.name}, self-test passed (${result.detail})`,
        passed: true,
      };
    }
    failed.push(result.detail);
  }
  return {
    ...selection,
    reason: `${selection.reason}; self-test FAILED on every backend (${failed.join("; ")})`,
    passed: false,
  };
}
