/**
 * The setup of the benches that hold an HTTP route of the server against a raw onnxruntime-node `session.run`
 * of the same model: a native-backend server on a scratch data dir beside the raw session, and the two
 * measured in alternating blocks so both see the same machine load.
 * @module
 */
import * as ort from "../../serving/backends/ort_native.ts";
import { type RunningServer, startServer } from "../../api/server.ts";
import { ServerConfigSchema } from "../../config/server.ts";

/** Runs `measure` with a ready native-backend server serving `modelPath` and a raw session of the same model. */
export async function withServerAndSession<T>(
  modelPath: string,
  measure: (server: RunningServer, raw: ort.InferenceSession) => Promise<T>,
): Promise<T> {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-bench-" });
  const server = await startServer(
    ServerConfigSchema.parse({ port: 0, models: [modelPath], backend: "native", dataDir }),
  );
  const raw = await ort.InferenceSession.create(modelPath, { graphOptimizationLevel: "all" });
  try {
    await server.ready;
    return await measure(server, raw);
  } finally {
    await raw.release();
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
}

/**
 * `iterations` calls of each of `first` and `second`, in alternating blocks of `block` counted calls, each
 * block led by one call that is not counted: onnxruntime's pool threads spin for a while after a run, and that
 * spin would otherwise land on the other measurement.
 */
export async function alternateBlocks<A, B>(
  first: () => Promise<A>,
  second: () => Promise<B>,
  o: { iterations: number; block: number },
): Promise<{ first: A[]; second: B[] }> {
  const a: A[] = [];
  const b: B[] = [];
  while (a.length < o.iterations) {
    for (let i = 0; i <= o.block; i++) {
      const result = await first();
      if (i > 0) a.push(result);
    }
    for (let i = 0; i <= o.block; i++) {
      const result = await second();
      if (i > 0) b.push(result);
    }
  }
  return { first: a, second: b };
}
