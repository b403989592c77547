/**
 * Seeded mutation fuzzing for parsers that take bytes from the network. A target module exports
 * `fuzzCase(seed)`: it mutates a valid input with the seed's PRNG, feeds it to the parser and resolves with the
 * outcome's class ("accepted", or the refusal's code) when the parser answered as it should, and throws when it
 * did not (a 500-class error, an untyped error, an engine error such as a bad DataView offset). The cases run in
 * a worker so a hang is caught: the worker reports each seed before running it, and is terminated when it falls
 * silent, failing the test with the seed it was stuck on. Seeds are deterministic, so a failing seed reproduces.
 */
import assert from "node:assert/strict";

// Byte values that sit on edges: zero, sign bits, all ones, varint continuation.
const EDGE_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];

/**
 * 1-4 random edits of `input`: flip a bit, write an edge byte or a random one, write a 32-bit edge value or a
 * small 16-bit one, truncate, insert random bytes, delete or duplicate a slice. `focus` bytes from the start get half the
 * point edits (the headers, where the structure lives).
 */
export function mutate(input: Uint8Array, rand: () => number, focus = input.length): Uint8Array {
  let out = input.slice();
  const at = (n = out.length) => Math.floor(rand() * Math.max(n, 1));
  // A third of the edits land just after the previous one, so that pairs such as "shrink a length field, then
  // end the file right there" come up as often as they do in real corrupt uploads.
  let last = -1;
  const point = () => {
    const r = rand();
    const p = last >= 0 && r < 0.33 ? last + 1 + at(12) : r < 0.66 ? at(Math.min(focus, out.length)) : at();
    last = Math.min(p, Math.max(out.length - 1, 0));
    return last;
  };
  const edits = 1 + at(4);
  for (let e = 0; e < edits && out.length > 0; e++) {
    switch (at(9)) {
      case 0:
        out[point()] ^= 1 << at(8);
        break;
      case 1:
        out[point()] = EDGE_BYTES[at(EDGE_BYTES.length)];
        break;
      case 2:
        out[point()] = at(256);
        break;
      case 3: {
        const i = point();
        const value = [0, 0xffffffff, 0x7fffffff, 0x80000000][at(4)];
        for (let k = 0; k < 4 && i + k < out.length; k++) out[i + k] = (value >>> (8 * k)) & 0xff;
        break;
      }
      case 4:
        out = out.slice(0, point());
        break;
      case 5: {
        const i = at(out.length + 1);
        const extra = Uint8Array.from({ length: 1 + at(16) }, () => at(256));
        out = new Uint8Array([...out.subarray(0, i), ...extra, ...out.subarray(i)]);
        break;
      }
      case 6: {
        const i = at(), n = 1 + at(64);
        out = new Uint8Array([...out.subarray(0, i), ...out.subarray(i + n)]);
        break;
      }
      case 7: {
        const i = at(), n = 1 + at(64);
        const j = at(out.length + 1);
        const slice = out.slice(i, i + n);
        out = new Uint8Array([...out.subarray(0, j), ...slice, ...out.subarray(j)]);
        break;
      }
      case 8: {
        // A small big-endian 16-bit value: a length field that no longer covers its own header.
        const i = point();
        out[i] = 0;
        if (i + 1 < out.length) out[i + 1] = at(16);
        break;
      }
    }
  }
  return out;
}

/** What a fuzz run saw: cases per outcome class, and the seeds whose case broke the contract. */
export interface FuzzReport {
  cases: number;
  outcomes: Record<string, number>;
  failures: { seed: number; error: string }[];
}

export interface FuzzOptions {
  /** Seeds that once failed, run first on every run. */
  regressions: number[];
  /** Run seeds 1, 2, ... for about this long. */
  budgetMs: number;
  /** A worker silent this long is taken as hung (generous: the test machine is shared). */
  hangMs: number;
}

/** Runs `target` (a module URL exporting fuzzCase) in a worker under `options`; fails on a hang. */
export function fuzz(target: URL, options: FuzzOptions): Promise<FuzzReport> {
  const worker = new Worker(new URL("./fuzz_worker.ts", import.meta.url), { type: "module" });
  return new Promise<FuzzReport>((resolve, reject) => {
    let current: number | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        worker.terminate();
        reject(
          new Error(`fuzz case for seed ${current} did not finish within ${options.hangMs} ms (a hang)`),
        );
      }, options.hangMs);
    };
    worker.onmessage = (e: MessageEvent<{ seed: number } | { report: FuzzReport }>) => {
      if ("seed" in e.data) {
        current = e.data.seed;
        arm();
        return;
      }
      clearTimeout(timer);
      worker.terminate();
      resolve(e.data.report);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      clearTimeout(timer);
      worker.terminate();
      reject(new Error(`fuzz worker crashed at seed ${current}: ${e.message}`));
    };
    arm();
    worker.postMessage({ target: target.href, ...options });
  });
}

/** The usual assertions on a report: no failures, and enough cases that the run meant something. */
export function assertClean(report: FuzzReport, minCases: number): void {
  assert.deepEqual(report.failures, [], JSON.stringify(report.failures.slice(0, 5)));
  assert.ok(report.cases >= minCases, `only ${report.cases} cases ran`);
}
