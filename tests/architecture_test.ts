/**
 * Keeps the imports of src/ pointing one way (docs/architecture.md): main -> api -> jobs -> train -> optim,
 * ops -> gpu; api -> serving -> image, onnx; api, jobs -> registry -> onnx; api, cli -> selftest -> serving,
 * train; api -> fleet -> registry, jobs, capture. The graph is read from the sources, so an arrow pointing back fails here with the file, line and import
 * that points back. Files past 400 lines (usually two concepts) are listed as a warning, not a failure.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { parseImports } from "./_helpers/import_graph.ts";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const SRC = join(ROOT, "src");

/** Layer -> the layers it must never import (type imports included: they couple the layers just the same). */
const FORBIDDEN: Record<string, string[]> = {
  serving: ["train", "jobs", "optim", "ops", "api", "fleet"],
  registry: ["train", "jobs", "serving", "api", "fleet"],
  fleet: ["api"],
  gpu: ["train", "jobs", "serving", "registry", "onnx", "api", "ops", "optim"],
  ops: ["train", "jobs", "serving", "registry", "api"],
  optim: ["train", "jobs", "serving", "registry", "api"],
  train: ["jobs", "serving", "api", "fleet"],
  image: ["train", "jobs", "serving", "api"],
  // The doctor's and the server's self-test: cli and api both use it.
  selftest: ["jobs", "api", "cli"],
  capture: ["train", "jobs", "serving", "api", "optim", "ops", "gpu", "fleet"],
};
/** A file past this many lines is usually two concepts (team brief). */
const LONG_FILE_LINES = 400;

async function* walk(dir: string, ext: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walk(path, ext);
    else if (entry.isFile && entry.name.endsWith(ext)) yield path;
  }
}

/** The src/ folder a path lies in ("serving" for src/serving/backends/ort.ts), or null outside src/. */
function layerOf(path: string): string | null {
  const rel = relative(SRC, path);
  if (rel.startsWith("..") || !rel.includes("/")) return null;
  return rel.split("/")[0];
}

interface Edge {
  file: string;
  line: number;
  specifier: string;
  from: string;
  to: string;
  typeOnly: boolean;
}

async function srcEdges(): Promise<Edge[]> {
  const edges: Edge[] = [];
  for await (const file of walk(SRC, ".ts")) {
    const from = layerOf(file)!;
    for (const ref of parseImports(await Deno.readTextFile(file))) {
      if (!ref.specifier.startsWith(".")) continue; // npm: and node: packages are not layers
      const to = layerOf(resolve(dirname(file), ref.specifier));
      if (to === null) continue;
      edges.push({ ...ref, file: relative(ROOT, file), from, to });
    }
  }
  return edges.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
}

function describe(e: Edge, why: string): string {
  return `${e.file}:${e.line} imports${e.typeOnly ? " (type only)" : ""} '${e.specifier}': ${why}`;
}

Deno.test("src/ imports point one way: no layer imports one above it", async () => {
  const edges = await srcEdges();
  assert.ok(edges.length > 0, "no relative imports found under src/: is SRC right?");
  const violations = edges.filter((e) => FORBIDDEN[e.from]?.includes(e.to)).map((e) =>
    describe(e, `${e.from} must not import ${e.to}`)
  );
  assert.deepEqual(
    violations,
    [],
    `Imports pointing back against the layering:\n  ${violations.join("\n  ")}`,
  );
});

Deno.test("src/reference imports only types from the code it checks, and only tests import it", async () => {
  const edges = await srcEdges();
  const violations = [
    ...edges.filter((e) => e.from === "reference" && e.to !== "reference" && !e.typeOnly).map((e) =>
      describe(
        e,
        "reference imports types only (use `import type`; a reference must not share the code it checks)",
      )
    ),
    ...edges.filter((e) => e.from !== "reference" && e.to === "reference").map((e) =>
      describe(e, "src/reference is for tests only")
    ),
  ];
  assert.deepEqual(violations, [], `Reference imports:\n  ${violations.join("\n  ")}`);
});

Deno.test("files past 400 lines under src/ and wgsl/ are listed (a warning: usually two concepts)", async () => {
  const long: string[] = [];
  for (const [dir, ext] of [["src", ".ts"], ["wgsl", ".wgsl"]]) {
    for await (const file of walk(join(ROOT, dir), ext)) {
      const lines = (await Deno.readTextFile(file)).split("\n").length;
      if (lines > LONG_FILE_LINES) long.push(`${relative(ROOT, file)}: ${lines} lines`);
    }
  }
  if (long.length) console.warn(`Files past ${LONG_FILE_LINES} lines:\n  ${long.sort().join("\n  ")}`);
});

Deno.test("parseImports() reads static, re-export, type-only and dynamic specifiers, not comments or strings", () => {
  const src = [
    'import a, { b, type C } from "./a.ts";',
    'import type { D } from "./d.ts";',
    'import { type E,\n  type F } from "./e.ts";',
    'export * from "./f.ts";',
    'export { g } from "./g.ts";',
    '// import x from "./comment.ts";',
    '/* export * from "./block.ts" */',
    'const s = "import y from \'./string.ts\'", t = `import z from "./template.ts" ${1 / 2}`;',
    'const re = /import "\\.\\/regex.ts"/;',
    'const m = await import("./h.ts");',
    'type I = typeof import("./i.ts");',
  ].join("\n");
  assert.deepEqual(parseImports(src), [
    { specifier: "./a.ts", typeOnly: false, dynamic: false, line: 1 },
    { specifier: "./d.ts", typeOnly: true, dynamic: false, line: 2 },
    { specifier: "./e.ts", typeOnly: true, dynamic: false, line: 4 },
    { specifier: "./f.ts", typeOnly: false, dynamic: false, line: 5 },
    { specifier: "./g.ts", typeOnly: false, dynamic: false, line: 6 },
    { specifier: "./h.ts", typeOnly: false, dynamic: true, line: 11 },
    { specifier: "./i.ts", typeOnly: true, dynamic: true, line: 12 },
  ]);
});
