/**
 * The capture policies of every model, one JSON file per model under `<captures>/policies/`, written atomically
 * (a crash leaves the old policy or the new one). They are read once at open and kept in memory, because the
 * detect path asks for its model's policy on every request.
 */
import { join } from "node:path";
import { writeJsonAtomic } from "../registry/atomic.ts";
import { type CapturePolicy, CapturePolicySchema, DEFAULT_CAPTURE_POLICY } from "./policy.ts";

export class PolicyBook {
  private constructor(private readonly dir: string, private readonly policies: Map<string, CapturePolicy>) {}

  /** Reads every saved policy; a file that does not parse is reported and the model stays `off`. */
  static async open(dir: string, log: (message: string) => void): Promise<PolicyBook> {
    await Deno.mkdir(dir, { recursive: true });
    const policies = new Map<string, CapturePolicy>();
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const path = join(dir, entry.name);
      try {
        policies.set(
          entry.name.slice(0, -".json".length),
          CapturePolicySchema.parse(JSON.parse(await Deno.readTextFile(path))),
        );
      } catch (err) {
        log(`capture policy ${path} is unreadable, capture stays off for it: ${(err as Error).message}`);
      }
    }
    return new PolicyBook(dir, policies);
  }

  get(model: string): CapturePolicy {
    return this.policies.get(model) ?? DEFAULT_CAPTURE_POLICY;
  }

  /** Saves `policy` for `model` (a name already checked against the model-name pattern). */
  async set(model: string, policy: CapturePolicy): Promise<void> {
    await writeJsonAtomic(join(this.dir, `${model}.json`), policy);
    this.policies.set(model, policy);
  }
}
