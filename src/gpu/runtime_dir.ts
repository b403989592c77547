/**
 * Mesa's Vulkan drivers (lavapipe included) look for a Wayland display under XDG_RUNTIME_DIR when an adapter is
 * requested and print "XDG_RUNTIME_DIR is invalid or not set" on every request where it does not name a
 * directory, as on headless boxes and in CI; Chromium (the dashboard tests) writes its dconf cache there too.
 * Points it at the temp directory in that case, for this process and the workers and children it starts.
 * Deno tasks cannot do this themselves: their shell passes `${VAR:-default}` through literally.
 */
export function ensureRuntimeDir(): void {
  const dir = Deno.env.get("XDG_RUNTIME_DIR");
  if (dir && isDirectory(dir)) return;
  Deno.env.set("XDG_RUNTIME_DIR", Deno.env.get("TMPDIR") || "/tmp");
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}
