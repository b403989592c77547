import { cp } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { TURBOJPEG_SONAME } from "../image/turbojpeg.ts";
import { archiveTree } from "./archive.ts";
import { ELF_MACHINE_NAMES, fileNativeKind } from "./native.ts";
import { type NpmLock, pruneNodeModules, retargetNodeModules } from "./node_modules.ts";
import { fetchNpmPackage, run } from "./npm_pack.ts";
import type { Target } from "./targets.ts";

/** What a bundle carries of the project itself, copied into app/. */
const APP_FILES = ["main.ts", "src", "wgsl", "web", "models", "deno.json", "deno.lock"];
/** deploy/ file -> its place in the bundle, and whether it is executable. */
const DEPLOY_FILES: [string, string, boolean][] = [
  ["kestrel", "bin/kestrel", true],
  ["install.sh", "install.sh", true],
  ["kestrel.service", "kestrel.service", false],
  ["kestrel.env", "kestrel.env", false],
  ["README.md", "README.md", false],
];

export interface BundleResult {
  /** The .tar.gz written. */
  path: string;
  bytes: number;
  /** The largest parts before compression (the Deno binary, each npm package, the app), largest first. */
  largest: { part: string; bytes: number }[];
}

/** The project version, from deno.json's "version". */
export async function projectVersion(root: string): Promise<string> {
  const { version } = JSON.parse(await Deno.readTextFile(join(root, "deno.json"))) as { version?: string };
  if (!version) throw new Error(`${join(root, "deno.json")} has no "version"`);
  return version;
}

/**
 * Writes the launcher, unit, env file, install.sh, README and VERSION of `version` into `dir`: everything in a
 * bundle except the Deno binary and the app.
 */
export async function writeDeployFiles(root: string, dir: string, version: string): Promise<void> {
  for (const [from, to, executable] of DEPLOY_FILES) {
    await Deno.mkdir(join(dir, to, ".."), { recursive: true });
    await Deno.copyFile(join(root, "deploy", from), join(dir, to));
    await Deno.chmod(join(dir, to), executable ? 0o755 : 0o644);
  }
  await Deno.writeTextFile(join(dir, "VERSION"), `${version}\n`);
}

async function treeBytes(path: string): Promise<number> {
  const info = await Deno.lstat(path);
  if (!info.isDirectory) return info.size;
  let total = 0;
  for await (const entry of Deno.readDir(path)) total += await treeBytes(join(path, entry.name));
  return total;
}

/**
 * The largest of `others` and of the npm packages in top/app/node_modules, before compression, largest first: what
 * a build reports so that growth shows where it comes from.
 */
export async function largestParts(
  top: string,
  others: string[],
  count: number,
): Promise<{ part: string; bytes: number }[]> {
  const packages = join(top, "app", "node_modules", ".deno");
  const parts = [...others];
  for await (const entry of Deno.readDir(packages)) {
    if (entry.isDirectory && entry.name !== "node_modules") parts.push(join(packages, entry.name));
  }
  const sized = await Promise.all(
    parts.map(async (p) => ({ part: relative(top, p), bytes: await treeBytes(p) })),
  );
  return sized.sort((a, b) => b.bytes - a.bytes).slice(0, count);
}

/**
 * Lays out what runs Kestrel offline in `top`: app/ (the project's APP_FILES with a node_modules tree for
 * `target`) and bin/deno (npm @deno/linux-*-glibc of the running Deno's version). With `only`, node_modules holds
 * just those deno.lock npm entries (npmClosure). Needs the npm registry.
 */
export async function stageRuntime(
  root: string,
  target: Target,
  top: string,
  only?: ReadonlySet<string>,
): Promise<void> {
  const app = join(top, "app");
  await Deno.mkdir(app, { recursive: true });
  for (const file of APP_FILES) await cp(join(root, file), join(app, file), { recursive: true });
  // Lays node_modules out from deno.lock exactly (the build machine's platform packages first; retargeted next).
  await run(Deno.execPath(), ["install", "--frozen", "--quiet"], app);
  const modules = join(app, "node_modules");
  const { npm } = JSON.parse(await Deno.readTextFile(join(app, "deno.lock"))) as { npm: NpmLock };
  await retargetNodeModules(modules, only ? await pruneNodeModules(modules, npm, only) : npm, target);
  const denoPackage = join(top, "..", "deno-package");
  await fetchNpmPackage(`${target.denoPackage}@${Deno.version.deno}`, denoPackage);
  await Deno.mkdir(join(top, "bin"));
  await Deno.rename(join(denoPackage, "deno"), join(top, "bin", "deno"));
  await Deno.chmod(join(top, "bin", "deno"), 0o755);
  await Deno.remove(denoPackage, { recursive: true });
}

/**
 * Copies libturbojpeg (`path`, symlinks followed) to `top`/lib/, where bin/kestrel points KESTREL_TURBOJPEG_LIB
 * at it: the JPEG fast path on a box without Debian's libturbojpeg0. Refuses a library built for another CPU.
 */
export async function addTurbojpegLib(top: string, target: Target, path: string): Promise<void> {
  const native = await fileNativeKind(path);
  if (native.kind !== "elf" || native.machine !== target.elfMachine) {
    const what = native.kind === "elf"
      ? `ELF for ${ELF_MACHINE_NAMES[native.machine] ?? native.machine}`
      : native.kind;
    throw new Error(`${path} is not a ${target.name} library (${what})`);
  }
  await Deno.mkdir(join(top, "lib"), { recursive: true });
  await Deno.copyFile(path, join(top, "lib", TURBOJPEG_SONAME));
  await Deno.chmod(join(top, "lib", TURBOJPEG_SONAME), 0o644);
}

/**
 * Builds dist/kestrel-<version>-<target>.tar.gz from the project at `root`: the runtime (stageRuntime), the
 * deploy files and, when given, libturbojpeg (addTurbojpegLib). Needs the npm registry; nothing in the result
 * needs any network.
 */
export async function buildBundle(
  root: string,
  target: Target,
  outDir: string,
  turbojpegLib?: string,
): Promise<BundleResult> {
  const version = await projectVersion(root);
  const name = `kestrel-${version}-${target.name}`;
  const staging = await Deno.makeTempDir({ prefix: "kestrel-bundle-" });
  try {
    const top = join(staging, name);
    await stageRuntime(root, target, top);
    await writeDeployFiles(root, top, version);
    if (turbojpegLib) await addTurbojpegLib(top, target, turbojpegLib);
    const largest = await largestParts(top, [join(top, "bin", "deno")], 5);
    await Deno.mkdir(outDir, { recursive: true });
    const path = resolve(outDir, `${name}.tar.gz`);
    await archiveTree(path, staging, name, ["-z"]);
    return { path, bytes: (await Deno.stat(path)).size, largest };
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
}
