// Every uniform layout the TypeScript packs (src/gpu/uniform.ts) must match the WGSL struct it feeds: same field
// names, same order, same scalar types. Read from the WGSL sources, so a field changed on one side fails here.
import assert from "node:assert/strict";
import { loadWgsl } from "../../src/gpu/wgsl.ts";
import { uniformLayout, uniformLayouts } from "../../src/gpu/uniform.ts";
// The modules that declare layouts (importing them registers their layouts).
import "../../src/ops/activation.ts";
import "../../src/ops/batchnorm.ts";
import "../../src/ops/binary.ts";
import "../../src/ops/conv.ts";
import "../../src/ops/gemm_tiled.ts";
import "../../src/ops/silu_bias_grad.ts";
import "../../src/ops/maxpool.ts";
import "../../src/ops/resize.ts";
import "../../src/optim/optimizer.ts";
import "../../src/optim/ema.ts";
import "../../src/gpu/reduce.ts";
import "../../src/train/loss.ts";

/** `struct Name { a: u32, b: array<G, 3>, ... }` of a WGSL source, comments stripped, arrays of structs and
 * nested structs flattened to `b[0].x`. */
function wgslStructs(code: string): Map<string, [string, string][]> {
  const text = code.replace(/\/\/[^\n]*/g, "");
  const raw = new Map<string, [string, string][]>();
  for (const m of text.matchAll(/struct\s+(\w+)\s*\{([^}]*)\}/g)) {
    const fields = [...m[2].matchAll(/(\w+)\s*:\s*(array<[^>]*>|[\w<>]+)/g)].map((f) =>
      [f[1], f[2]] as [string, string]
    );
    raw.set(m[1], fields);
  }
  const flatten = (struct: string): [string, string][] =>
    raw.get(struct)!.flatMap(([name, type]) => {
      const array = type.match(/^array<\s*(\w+)\s*,\s*(\d+)\s*>$/);
      if (array) {
        return Array.from({ length: Number(array[2]) }, (_, i) =>
          flatten(array[1]).map(([f, t]) => [`${name}[${i}].${f}`, t] as [string, string])).flat();
      }
      if (raw.has(type)) {
        return flatten(type).map(([f, t]) =>
          [`${name}.${f}`, t] as [string, string]
        );
      }
      return [[name, type]];
    });
  return new Map([...raw.keys()].map((s) => [s, flatten(s)]));
}

/** The layouts src/ declares (taken before the tests below declare their own). */
const declared = [...uniformLayouts()];

Deno.test("every uniform layout packs exactly the fields, order and types of its WGSL struct", () => {
  const layouts = declared;
  assert.ok(layouts.length >= 12, `only ${layouts.length} layouts registered: are their modules imported?`);
  for (const layout of layouts) {
    for (const file of layout.files) {
      const struct = wgslStructs(loadWgsl(file)).get(layout.struct);
      assert.ok(struct, `${file} has no struct ${layout.struct}`);
      assert.deepEqual(layout.fields.map(([n, t]) => [n, t]), struct, `${file} ${layout.struct}`);
      assert.equal(layout.byteLength % 16, 0, `${file} ${layout.struct}: not a multiple of 16 bytes`);
    }
  }
});

Deno.test("a layout packs named values little-endian at their field's offset and refuses unknown fields", () => {
  const layout = uniformLayout("test.wgsl", "T", [["a", "u32"], ["x", "f32"], ["b", "u32"], ["_p", "u32"]]);
  const view = new DataView(layout.pack({ b: 7, x: 0.5 }));
  assert.deepEqual([view.getUint32(0, true), view.getFloat32(4, true), view.getUint32(8, true)], [0, 0.5, 7]);
  assert.throws(() => layout.pack({ c: 1 } as never), /no field 'c'/);
  assert.throws(() => layout.pack({ a: -1 }), /unsigned 32-bit/);
});
