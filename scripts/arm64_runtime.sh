#!/usr/bin/env bash
# arm64_runtime.sh: the aarch64 userland an aarch64 bundle needs from its box, as a folder for qemu-aarch64's
# QEMU_LD_PREFIX, so that tests/bundle/bundle_test.ts can run the aarch64 bundle on an x86_64 machine. Test setup
# only: Kestrel never runs it. Debian's arm64 libc6, libstdc++6 and libgcc-s1 (what bin/deno, onnxruntime-node
# and sharp link against) and libturbojpeg0 (the test builds the bundle with --turbojpeg-lib from it) are fetched
# with apt-get and unpacked with dpkg-deb, without adding arm64 to this machine's dpkg architectures (apt's own
# lists for arm64 go to a folder of their own).
#
# It also writes SYSROOT/proc/cpuinfo as a Raspberry Pi 5 (Cortex-A76) shows it: qemu-user before 8.1 hands the
# guest the host's x86 /proc/cpuinfo (it opens SYSROOT/proc/cpuinfo first when that exists), which the cpuinfo
# library inside onnxruntime cannot parse; onnxruntime-node then dereferences NULL while loading (SIGSEGV), a
# crash no real aarch64 box has. The test runs QEMU's Cortex-A76 (QEMU_CPU=cortex-a76) to match.
#
# Usage: arm64_runtime.sh SYSROOT   (idempotent: a complete SYSROOT is left as it is; needs Debian's apt-get)
set -euo pipefail

sysroot=${1:?usage: arm64_runtime.sh SYSROOT}
# Written last: a fetch that stopped halfway is done again.
stamp="$sysroot/.complete"
[ -f "$stamp" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
# Its own lists and package cache: the machine's apt state is left as it was.
apt=(apt-get -q -oAPT::Architecture=arm64 -oAPT::Architectures=arm64 "-oDir::State::Lists=$work/lists"
  "-oDir::Cache=$work/cache")
"${apt[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }
# apt-get download writes into the working directory (as root, unsandboxed: _apt cannot write to a mktemp folder).
(cd "$work/debs" && "${apt[@]}" download libc6 libstdc++6 libgcc-s1 libturbojpeg0) >"$work/download.log" 2>&1 ||
  { cat "$work/download.log" >&2; exit 1; }
rm -rf "$sysroot"
mkdir -p "$sysroot/proc"
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done

cpus=$(getconf _NPROCESSORS_CONF)
for ((i = 0; i < cpus; i++)); do
  printf 'processor\t: %d\nBogoMIPS\t: 108.00\n' "$i"
  printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n'
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n'
done >"$sysroot/proc/cpuinfo"
touch "$stamp"
