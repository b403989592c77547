import { join } from "node:path";

/**
 * Downloads one npm package tarball with the npm client (the registry is the only network a build machine
 * needs) and unpacks it to `dest` (the package's root). When `integrity` is given (deno.lock's sha512), a
 * tarball that does not match it is refused.
 */
export async function fetchNpmPackage(spec: string, dest: string, integrity?: string): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "kestrel-npm-pack-" });
  try {
    const packed = await run("npm", ["pack", "--json", "--silent", "--pack-destination", work, spec], work);
    const [info] = JSON.parse(packed) as { filename: string; integrity: string }[];
    if (integrity && info.integrity !== integrity) {
      throw new Error(
        `${spec}: registry tarball integrity ${info.integrity} does not match deno.lock's ${integrity}`,
      );
    }
    await run("tar", ["-xzf", join(work, info.filename), "-C", work], work);
    await Deno.mkdir(join(dest, ".."), { recursive: true });
    await Deno.rename(join(work, "package"), dest);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** Runs a build tool and returns its stdout; a failure throws with its stderr. */
export async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(cmd, {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const err = new TextDecoder().decode(stderr);
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${code}): ${err.trim()}`);
  return new TextDecoder().decode(stdout);
}
