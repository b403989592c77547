/**
 * A fleet node (tests/fleet/_node.ts, the stand-in trainer) as a child process of a test: its stdout and stderr
 * collected line by line, started once it prints `listening <url>`, stopped with SIGTERM and SIGKILLed after a
 * grace period.
 * @module
 */
import { until as poll } from "../_helpers/poll.ts";

/** Bound on each wait: node start, takeover (ack wait 10 s) and replication, on a loaded 2-core machine. */
export const WAIT_MS = 60_000;
/** Grace period between SIGTERM and SIGKILL when the test stops a node. */
const STOP_GRACE_MS = 5_000;
const NODE_SCRIPT = new URL("./_node.ts", import.meta.url).pathname;

export class Node {
  readonly log: string[] = [];
  url = "";
  private constructor(readonly name: string, readonly child: Deno.ChildProcess) {}

  /** `env`: added to this process's environment (e.g. the stand-in trainer's settings, see _node.ts). */
  static async start(name: string, args: string[], env: Record<string, string> = {}): Promise<Node> {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", NODE_SCRIPT, ...args],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const node = new Node(name, child);
    void node.collect(child.stderr);
    const url = await node.collect(child.stdout);
    node.url = url;
    return node;
  }

  /** Collect lines into the log; resolves with the URL of the `listening` line (stdout). */
  private collect(stream: ReadableStream<Uint8Array>): Promise<string> {
    const { promise, resolve } = Promise.withResolvers<string>();
    (async () => {
      let rest = "";
      const decoder = new TextDecoder();
      for await (const bytes of stream) {
        const lines = (rest + decoder.decode(bytes, { stream: true })).split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          this.log.push(line);
          const match = line.match(/^listening (\S+)/);
          if (match) resolve(match[1]);
        }
      }
    })();
    return promise;
  }

  async waitFor(pattern: RegExp): Promise<RegExpMatchArray> {
    return await until(`${this.name} to log ${pattern}`, () => {
      for (const line of this.log) {
        const match = line.match(pattern);
        if (match) return match;
      }
      return null;
    });
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      return; // already gone
    }
    const killer = setTimeout(() => this.child.kill("SIGKILL"), STOP_GRACE_MS);
    await this.child.status;
    clearTimeout(killer);
  }
}

/** Polls `probe` (tests/_helpers/poll.ts) for at most WAIT_MS. */
export function until<T>(what: string, probe: () => Promise<T | null> | T | null): Promise<T> {
  return poll(what, WAIT_MS, probe);
}
