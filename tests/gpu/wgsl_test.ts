import assert from "node:assert/strict";
import { loadWgsl } from "../../src/gpu/wgsl.ts";

const root = new URL("../../wgsl/", import.meta.url);

Deno.test("loadWgsl puts each included file's source where its include line was, and leaves no include line", () => {
  const raw = Deno.readTextFileSync(new URL("ops/conv.wgsl", root));
  const included = [...raw.matchAll(/^\/\/ #include (\S+)$/gm)].map((m) => m[1]);
  assert.ok(included.length > 0, "ops/conv.wgsl includes its shared helpers");
  const code = loadWgsl("ops/conv.wgsl");
  assert.doesNotMatch(code, /#include/);
  let expected = raw;
  for (const path of included) {
    expected = expected.replace(`// #include ${path}`, Deno.readTextFileSync(new URL(path, root)));
  }
  assert.equal(code, expected);
});
