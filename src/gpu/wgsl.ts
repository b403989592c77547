/** WGSL sources live in the repository's wgsl/ folder; this reads them once per process. */
const root = new URL("../../wgsl/", import.meta.url);
const cache = new Map<string, string>();

/** Source of `wgsl/<path>` (e.g. "optim/adam.wgsl"). */
export function loadWgsl(path: string): string {
  let code = cache.get(path);
  if (code === undefined) {
    code = Deno.readTextFileSync(new URL(path, root));
    cache.set(path, code);
  }
  return code;
}
