import { assertClean, fuzz } from "../_helpers/fuzz.ts";

Deno.test("fuzz: mutated JPEG, PNG and WebP files decode or are refused with an ImageError, never a hang or a crash", async () => {
  const report = await fuzz(new URL("./_fuzz_target.ts", import.meta.url), {
    // 29253: a JPEG frame header whose length field is too short for its fields, at the end of the file
    // (readImageHeader read past the buffer: a RangeError, a 500 on detect).
    regressions: [29253],
    budgetMs: 3000,
    hangMs: 30_000,
  });
  console.log(`image fuzz: ${report.cases} cases`, report.outcomes);
  assertClean(report, 50);
});
