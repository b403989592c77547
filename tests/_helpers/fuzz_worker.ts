/// <reference lib="deno.worker" />
// Runs one target's fuzz cases for tests/_helpers/fuzz.ts: the seed is posted before each case, so the parent
// can name the seed a hang happened on; the report is posted at the end.
import type { FuzzReport } from "./fuzz.ts";

interface Start {
  target: string;
  regressions: number[];
  budgetMs: number;
}

self.onmessage = async (e: MessageEvent<Start>) => {
  const { fuzzCase } = await import(e.data.target) as { fuzzCase: (seed: number) => Promise<string> };
  const report: FuzzReport = { cases: 0, outcomes: {}, failures: [] };
  const run = async (seed: number) => {
    self.postMessage({ seed });
    report.cases++;
    try {
      const outcome = await fuzzCase(seed);
      report.outcomes[outcome] = (report.outcomes[outcome] ?? 0) + 1;
    } catch (err) {
      report.failures.push({ seed, error: `${(err as Error).name}: ${(err as Error).message}` });
    }
  };
  for (const seed of e.data.regressions) await run(seed);
  const end = performance.now() + e.data.budgetMs;
  for (let seed = 1; performance.now() < end; seed++) await run(seed);
  self.postMessage({ report });
};
