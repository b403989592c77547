/**
 * Writes a bundle's staging folder into one archive with tar, owned by root in the archive.
 * @module
 */

/**
 * Archives `dir/name` into `path` (`compress`: tar's compression options, e.g. ["-z"] or ["-I", "xz -6"]).
 *
 * The staging tree's node_modules files are hard links into Deno's npm cache, so another `deno install` on the
 * machine changes their link count (their ctime) while tar reads them, and GNU tar then exits 1 with "file
 * changed as we read it" although no byte changed (the cache's files are immutable once written). In create
 * mode exit 1 means only that, so it is accepted with the warning silenced; any other failure throws.
 */
export async function archiveTree(
  path: string,
  dir: string,
  name: string,
  compress: string[],
): Promise<void> {
  const { code, stderr } = await new Deno.Command("tar", {
    args: [
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--warning=no-file-changed",
      ...compress,
      "-cf",
      path,
      "-C",
      dir,
      name,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code === 0 || code === 1) return;
  throw new Error(`tar: archiving ${name} failed (exit ${code}): ${new TextDecoder().decode(stderr).trim()}`);
}
