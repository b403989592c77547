import assert from "node:assert/strict";

// `deno task bench` runs every .ts file in src/bench/ as one benchmark line; a helper module placed there would
// print an error line and make the command exit 1.
Deno.test("every module in src/bench/ is a benchmark (exports bench())", async () => {
  const dir = new URL("../../src/bench/", import.meta.url);
  const names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".ts")).map((e) =>
    e.name
  );
  assert.ok(names.length > 0, "no benchmark modules found");
  for (const name of names) {
    const mod = await import(new URL(name, dir).href);
    assert.equal(typeof mod.bench, "function", `src/bench/${name} exports no bench()`);
  }
});
