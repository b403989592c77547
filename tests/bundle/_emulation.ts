import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
/**
 * Where scripts/arm64_runtime.sh keeps the aarch64 userland between runs: a few MB from Debian that changes only
 * with its point releases.
 */
const SYSROOT = join(
  Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/tmp", ".cache"),
  "kestrel-tests",
  "arm64-sysroot",
);
/**
 * QEMU's model of a Raspberry Pi 5's core, the aarch64 edge box the README names; SYSROOT's /proc/cpuinfo
 * describes the same CPU.
 */
const QEMU_CPU = "cortex-a76";
/** The longest of the probes: apt-get update and download of ~3 MB from Debian's mirror (about 3 s seen). */
const PROBE_LIMIT_MS = 120_000;

/** How to run an aarch64 bundle on this machine under QEMU user-mode emulation. */
export interface Arm64Emulation {
  /** Debian's arm64 libc6, libstdc++6, libgcc-s1 and libturbojpeg0, unpacked (QEMU_LD_PREFIX). */
  sysroot: string;
  /** Debian's arm64 libturbojpeg.so.0 in `sysroot`, for a bundle built with --turbojpeg-lib. */
  turbojpegLib: string;
  /** The environment that `registerQemu` in a shell needs, as NAME=value (for `env`). */
  env: string[];
}

/**
 * Shell that makes this user namespace run aarch64 ELF files with qemu-aarch64, the way qemu-user-binfmt does
 * for a whole machine: a binfmt_misc of its own (Linux 6.7+ gives one to each user namespace that mounts it, so
 * nothing outside the namespace changes) with QEMU's aarch64 ELF magic and mask. `F` opens the interpreter now,
 * so later mounts cannot hide it. An older kernel refuses the mount; there the machine's own registration, where
 * qemu-user-binfmt made one, serves (arm64Emulation's probe tells). Exits 96 when the registration is refused.
 */
export const REGISTER_QEMU = `
if mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null; then
  printf '%s' ':kestrel-qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:'"$QEMU"':F' \\
    >/proc/sys/fs/binfmt_misc/register || exit 96
fi
`;

/** What `command` printed and whether it exited 0; a command that cannot start or runs past the limit is a failure. */
async function output(command: string, args: string[]) {
  try {
    const { code, stdout, stderr } = await new Deno.Command(command, {
      args,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(PROBE_LIMIT_MS),
    }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
    return { ok: code === 0, stdout: text(stdout), stderr: text(stderr) };
  } catch (err) {
    return { ok: false, stdout: "", stderr: (err as Error).message };
  }
}

/**
 * The aarch64 emulation, or why this machine has none: qemu-aarch64 (Debian's qemu-user), the arm64 userland
 * (fetched into SYSROOT by scripts/arm64_runtime.sh at the first run) and a user namespace in which an aarch64
 * binary runs after REGISTER_QEMU.
 */
export async function arm64Emulation(): Promise<Arm64Emulation | { missing: string }> {
  const qemu = await output("sh", ["-c", "command -v qemu-aarch64"]);
  if (!qemu.ok) return { missing: "no qemu-aarch64 on PATH (apt-get install qemu-user)" };
  const fetch = await output(join(ROOT, "scripts/arm64_runtime.sh"), [SYSROOT]);
  if (!fetch.ok) return { missing: `scripts/arm64_runtime.sh ${SYSROOT} failed: ${fetch.stderr}` };
  const env = [`QEMU=${qemu.stdout}`, `QEMU_LD_PREFIX=${SYSROOT}`, `QEMU_CPU=${QEMU_CPU}`];
  // The emulated loader itself: proves the namespace, the registration and the sysroot together.
  const probe = await output("unshare", [
    "-U",
    "-r",
    "-m",
    "env",
    ...env,
    "sh",
    "-c",
    `${REGISTER_QEMU}\n"$1" --list-diagnostics >/dev/null`,
    "sh",
    join(SYSROOT, "lib/ld-linux-aarch64.so.1"),
  ]);
  if (!probe.ok) {
    return {
      missing: `an aarch64 binary does not run in a user namespace with binfmt_misc: ${probe.stderr}`,
    };
  }
  return {
    sysroot: SYSROOT,
    turbojpegLib: join(SYSROOT, "usr/lib/aarch64-linux-gnu/libturbojpeg.so.0"),
    env,
  };
}
