import { join } from "node:path";
import { sha256 } from "../../src/registry/registry.ts";

/** Every file under `dir` with its bytes' sha256: what "unchanged" means for a data dir. */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else out[p.slice(dir.length)] = await sha256(await Deno.readFile(p));
    }
  };
  await walk(dir);
  return out;
}
