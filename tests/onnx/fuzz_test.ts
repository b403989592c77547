import { assertClean, fuzz } from "../_helpers/fuzz.ts";

Deno.test("fuzz: mutated ONNX uploads are stored or refused with a 4xx registry error, never a hang or a crash", async () => {
  const report = await fuzz(new URL("./_fuzz_target.ts", import.meta.url), {
    regressions: [],
    budgetMs: 3000,
    hangMs: 30_000,
  });
  console.log(`onnx fuzz: ${report.cases} cases`, report.outcomes);
  assertClean(report, 50);
});
