/**
 * `deno task bench [--json] [--only name,...]`: runs every benchmark module in src/bench/ and prints one line per
 * benchmark. A module exports `bench(): Promise<Record<string, unknown>>`; its file stem is the line's `name`.
 */
export interface BenchModule {
  bench(): Promise<Record<string, unknown>>;
}

export async function run(args: string[]): Promise<number> {
  const json = args.includes("--json");
  const onlyIdx = args.indexOf("--only");
  const only = onlyIdx >= 0 ? new Set(args[onlyIdx + 1]?.split(",")) : undefined;
  const dir = new URL("../bench/", import.meta.url);
  const names = [...Deno.readDirSync(dir)]
    .filter((e) => e.isFile && e.name.endsWith(".ts"))
    .map((e) => e.name.slice(0, -3))
    .filter((n) => !only || only.has(n))
    .sort();
  let failed = 0;
  for (const name of names) {
    const mod = (await import(new URL(`${name}.ts`, dir).href)) as BenchModule;
    try {
      const result = { name, ...(await mod.bench()) };
      console.log(json ? JSON.stringify(result) : `${name}: ${JSON.stringify(result, null, 2)}`);
    } catch (err) {
      failed++;
      const line = { name, error: err instanceof Error ? err.message : String(err) };
      console.log(json ? JSON.stringify(line) : `${name}: FAILED ${line.error}`);
    }
  }
  return failed ? 1 : 0;
}
