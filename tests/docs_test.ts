// The documentation the code cites lives in docs/ and says what the code says it does: every `§N` citation (they
// all cite docs/training.md) names a section that exists there, every docs/*.md link points to a file, and
// nothing points to a document outside the repository.
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const SELF = relative(ROOT, new URL(import.meta.url).pathname);

async function* walk(dir: string, ext: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walk(path, ext);
    else if (entry.isFile && entry.name.endsWith(ext)) yield path;
  }
}

interface Source {
  file: string;
  text: string;
}

/** src/, tests/, wgsl/, main.ts, README.md and docs/: everything that may cite the docs. */
async function sources(): Promise<Source[]> {
  const files = [join(ROOT, "main.ts"), join(ROOT, "README.md")];
  for (const [dir, ext] of [["src", ".ts"], ["tests", ".ts"], ["wgsl", ".wgsl"], ["docs", ".md"]]) {
    for await (const file of walk(join(ROOT, dir), ext)) files.push(file);
  }
  const out: Source[] = [];
  for (const file of files.sort()) {
    const rel = relative(ROOT, file);
    if (rel !== SELF) out.push({ file: rel, text: await Deno.readTextFile(file) });
  }
  return out;
}

/** Every match of `re` (global) in the sources, with where it is. */
function matches(all: Source[], re: RegExp): { where: string; match: RegExpMatchArray }[] {
  return all.flatMap(({ file, text }) =>
    [...text.matchAll(re)].map((match) => ({
      where: `${file}:${text.slice(0, match.index).split("\n").length}`,
      match,
    }))
  );
}

/** The section numbers of docs/training.md's headings ("## §3 ...", "### §3.1 ..."). */
async function trainingSections(): Promise<Set<string>> {
  const text = await Deno.readTextFile(join(ROOT, "docs/training.md"));
  return new Set([...text.matchAll(/^#{2,3} §(\d+(?:\.\d+)?) /gm)].map((m) => m[1]));
}

Deno.test("every § citation names a section of docs/training.md", async () => {
  const sections = await trainingSections();
  assert.ok(sections.has("6.3") && sections.has("11"), "docs/training.md has its numbered sections");
  const all = await sources();
  const cited = matches(all, /§(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?/g);
  assert.ok(cited.length > 20, `only ${cited.length} § citations found: is the scan right?`);
  const broken = cited.flatMap(({ where, match }) =>
    [match[1], match[2]].filter((n) => n !== undefined && !sections.has(n)).map((n) => `${where}: §${n}`)
  );
  assert.deepEqual(
    broken,
    [],
    `§ citations without a section in docs/training.md:\n  ${broken.join("\n  ")}`,
  );
});

Deno.test("every docs/*.md link in the code, tests and README points to a file in docs/", async () => {
  const all = await sources();
  const links = [
    ...matches(all, /\bdocs\/([\w.-]+\.md)/g).map(({ where, match }) => ({
      where,
      path: join("docs", match[1]),
    })),
    // Markdown links inside docs/ are relative to docs/.
    ...matches(all.filter((s) => s.file.startsWith("docs/")), /\]\(([\w.-]+\.md)\)/g).map((
      { where, match },
    ) => ({
      where,
      path: join("docs", match[1]),
    })),
  ];
  assert.ok(links.length > 0, "no docs/ links found: is the scan right?");
  const missing: string[] = [];
  for (const { where, path } of links) {
    try {
      await Deno.stat(join(ROOT, path));
    } catch {
      missing.push(`${where}: ${path}`);
    }
  }
  assert.deepEqual(missing, [], `links to missing docs:\n  ${missing.join("\n  ")}`);
});

Deno.test("nothing cites a document outside the repository", async () => {
  const outside = matches(
    await sources(),
    /shared\/(?:docs|README)|yolov5-training-spec|ENGINE\.md|architecture sketch|\bspec\s*(?:\n\s*(?:\*|\/\/)\s*)?§|(?<!docs\/)\barchitecture\.md/gi,
  ).map(({ where, match }) => `${where}: '${match[0]}'`);
  assert.deepEqual(
    outside,
    [],
    `references to documents the repository does not have:\n  ${outside.join("\n  ")}`,
  );
});
