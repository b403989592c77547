#!/usr/bin/env bash
# gpu_bench.sh: Kestrel's fine-tune step against PyTorch's on this machine's GPU, from the package that
# `deno task gpu-bench-package` builds (README: Measuring on a GPU). One command for a bare x86_64 Linux machine
# with an NVIDIA GPU and no network: unpacks, brings the Vulkan loader if the machine lacks one, runs
# `kestrel doctor`, the conv_shapes bench, finetune_step for each case on the WebGPU (Vulkan) adapter, and where a
# python3 with torch is installed, train.py's step on the same GPU; prints one Markdown table. Stays within
# KESTREL_GPU_BENCH_BUDGET_S (450 s): every stage has a time limit and every case a bounded number of steps.
#
# Usage: gpu_bench.sh [--quick] [--allow-fallback] PACKAGE.tar.xz|UNPACKED_PACKAGE_DIR
#   --quick           every stage, with tiny cases and one timed step: the dry run on a box without a GPU
#                     (lavapipe); implies --allow-fallback
#   --allow-fallback  measure Kestrel even when the WebGPU adapter is a fallback (software) one; without it such an
#                     adapter's cases are skipped, since their figures say nothing about the GPU
# Environment: KESTREL_GPU_BENCH_WORK (where to unpack and keep results; default: a new folder in /tmp),
#   KESTREL_GPU_BENCH_BUDGET_S, KESTREL_GPU_BENCH_CASES (other cases, e.g. 320x8:f32,640x64:amp),
#   KESTREL_PYTHON (the python3 with torch; default: the first of python3 and /usr/bin/python3 that imports torch,
#   cv2, yaml), KESTREL_GPU_BENCH_PACKAGED_LOADER=1 (use the package's Vulkan loader even where the machine has
#   one: tests that path).
set -uo pipefail

quick=0
allow_fallback=0
package=""
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 allow_fallback=1 ;;
    --allow-fallback) allow_fallback=1 ;;
    -*) echo "gpu_bench: unknown flag $arg" >&2; exit 2 ;;
    *) package=$arg ;;
  esac
done
if [ -z "$package" ] || [ ! -e "$package" ]; then
  sed -n '/^# Usage:/,/^[^#]/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi

budget=${KESTREL_GPU_BENCH_BUDGET_S:-450}
say() { echo "gpu_bench [$SECONDS s]: $*" >&2; }
# Seconds left before the budget, minus what later stages reserve.
left() { echo $((budget - SECONDS - ${1:-0})); }

if [ $quick = 1 ]; then
  cases="64x2:f32,64x2:amp"
  kestrel_steps="KESTREL_BENCH_WARMUP=1 KESTREL_BENCH_STEPS=1 KESTREL_BENCH_SECONDS=1"
  torch_steps="--warmup 1 --steps 1 --seconds 1"
  conv_env="KESTREL_BENCH_IMGSZ=64 KESTREL_BENCH_BATCH=1"
else
  cases="320x8:f32,320x8:amp,640x8:f32,640x8:amp,320x64:f32,320x64:amp,640x64:f32,640x64:amp"
  kestrel_steps="KESTREL_BENCH_WARMUP=2 KESTREL_BENCH_STEPS=20 KESTREL_BENCH_SECONDS=8"
  torch_steps="--warmup 3 --steps 30 --seconds 6"
  conv_env="KESTREL_BENCH_IMGSZ=320 KESTREL_BENCH_BATCH=8"
fi
# KESTREL_GPU_BENCH_CASES picks other cases (same form: IMGSZxBATCH:f32|amp, comma-separated).
cases=${KESTREL_GPU_BENCH_CASES:-$cases}
# Time limits (s) of one doctor, one conv_shapes, one Kestrel case, the whole PyTorch run.
doctor_cap=60 conv_cap=60 case_cap=45 torch_cap=150

# --- unpack ---------------------------------------------------------------------------------------------------
work=${KESTREL_GPU_BENCH_WORK:-$(mktemp -d /tmp/kestrel-gpubench.XXXXXX)}
results=$work/results
# A reused work folder must not lend the table an earlier run's figures.
rm -rf "$results"
mkdir -p "$results"
if [ -d "$package" ]; then
  top=$(cd "$package" && pwd)
else
  say "unpacking $package into $work"
  tar -xJf "$package" -C "$work" || { say "cannot unpack $package"; exit 1; }
  top=$(ls -d "$work"/kestrel-gpubench-*/ | head -1)
  top=${top%/}
fi
[ -x "$top/bin/kestrel" ] || { say "$top is not a kestrel-gpubench package (no bin/kestrel)"; exit 1; }

# --- Vulkan: the loader, and the NVIDIA driver's ICD where the loader would not find it -----------------------
ldconfig_bin=$(command -v ldconfig || echo /sbin/ldconfig)
known_libs=$("$ldconfig_bin" -p 2>/dev/null)
# The loader, and glvnd's dispatch library: NVIDIA's Vulkan driver lives in its GLX library, which needs it.
missing_libs=""
for lib in libvulkan.so.1 libGLdispatch.so.0; do
  case "$known_libs" in *"$lib "*) ;; *) missing_libs="$missing_libs $lib" ;; esac
done
if [ "${KESTREL_GPU_BENCH_PACKAGED_LOADER:-0}" != 1 ] && [ -z "$missing_libs" ]; then
  loader="the machine's libvulkan.so.1"
else
  # Unpacked beside the package, not into /: nothing here needs root.
  root=$work/vulkan-root
  mkdir -p "$root"
  for deb in "$top"/vulkan/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$root"
    elif command -v ar >/dev/null; then
      (cd "$root" && ar p "$deb" "$(ar t "$deb" | grep '^data\.tar')" | tar -xJf -)
    else
      say "cannot unpack $deb: neither dpkg-deb nor ar is installed"
    fi
  done
  export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  loader="the package's ($(cd "$top/vulkan" && ls | tr '\n' ' ')), the machine lacking:${missing_libs:- none (forced)}"
fi
# The driver's own libraries, where the NVIDIA container toolkit mounts them, if ld.so does not know them already.
for dir in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  [ -d "$dir" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$dir"
done
icd_note="the loader's search path"
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && command -v nvidia-smi >/dev/null; then
  if ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json \
    /usr/local/share/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/icd.d/nvidia_icd.json; do
      if [ -f "$icd" ]; then
        # VK_ICD_FILENAMES for loaders older than 1.3.207, which do not read VK_DRIVER_FILES.
        export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
        icd_note=$icd
        break
      fi
    done
  fi
fi
say "Vulkan loader: $loader; ICD: $icd_note"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true
fi

export KESTREL_REFERENCE_DIR="$top/reference" DENO_DIR="$work/deno-cache" NO_COLOR=1

# --- PyTorch: found first, so the Kestrel cases leave it its time ----------------------------------------------
python=""
for candidate in ${KESTREL_PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && timeout 60 "$candidate" -c "import torch, cv2, yaml" 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -n "$python" ]; then
  torch_reserve=$torch_cap
  say "PyTorch: $python ($("$python" -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "no cuda")'))"
else
  torch_reserve=0
  echo "skipped: no python3 with torch, cv2 and yaml" >"$results/torch.status"
  say "PyTorch: not found (no python3 imports torch, cv2 and yaml)"
fi

# --- kestrel doctor ---------------------------------------------------------------------------------------------
say "kestrel doctor"
timeout -k 5 "$doctor_cap" "$top/bin/kestrel" doctor --data-dir "$work/data" >"$results/doctor.txt" 2>&1
echo "doctor exit $?" >>"$results/doctor.txt"
sed 's/^/  /' "$results/doctor.txt" >&2
adapter=$(grep -o 'webgpu adapter: .*' "$results/doctor.txt" | head -1)
kestrel_skip=""
if [ -z "$adapter" ] || grep -q '^FAIL webgpu adapter' "$results/doctor.txt"; then
  kestrel_skip="skipped: no WebGPU adapter (see the doctor's report)"
elif [[ $adapter == *"fallback (software)"* ]]; then
  if [ $allow_fallback = 1 ]; then
    say "the WebGPU adapter is a FALLBACK (software) adapter: Kestrel's figures are not GPU figures"
  else
    kestrel_skip="skipped: fallback adapter (no hardware Vulkan adapter; --allow-fallback measures anyway)"
  fi
else
  say "the WebGPU adapter is a hardware adapter"
fi

# A stage's command under its time limit; its status file says how it ended.
limited() {
  local seconds=$1 status=$2 out=$3
  shift 3
  timeout -k 5 "$seconds" "$@" >"$out" 2>"${out%.*}.log"
  local rc=$?
  if [ $rc = 124 ] || [ $rc = 137 ]; then echo "timeout $seconds" >"$status"; else echo "exit $rc" >"$status"; fi
}

# --- conv_shapes ------------------------------------------------------------------------------------------------
if [ -n "$kestrel_skip" ]; then
  echo "$kestrel_skip" >"$results/conv_shapes.status"
else
  t=$(left $((torch_reserve + 60))); [ "$t" -gt "$conv_cap" ] && t=$conv_cap
  if [ "$t" -lt 15 ]; then
    echo "skipped: time budget" >"$results/conv_shapes.status"
    say "conv_shapes: skipped (time budget)"
  else
    say "conv_shapes ($conv_env), limit ${t} s"
    limited "$t" "$results/conv_shapes.status" "$results/conv_shapes.json" \
      env $conv_env "$top/bin/kestrel" bench --json --only conv_shapes
  fi
fi

# --- Kestrel finetune_step, one process per case ---------------------------------------------------------------
for c in ${cases//,/ }; do
  file=$results/kestrel-${c/:/-}
  size=${c%%:*}
  precision=${c#*:}
  amp=false
  [ "$precision" = amp ] && amp=true
  if [ -n "$kestrel_skip" ]; then
    echo "$kestrel_skip" >"$file.status"
    continue
  fi
  t=$(left $((torch_reserve + 10))); [ "$t" -gt "$case_cap" ] && t=$case_cap
  if [ "$t" -lt 15 ]; then
    echo "skipped: time budget" >"$file.status"
    say "finetune_step $c: skipped (time budget)"
    continue
  fi
  say "finetune_step $c, limit ${t} s"
  limited "$t" "$file.status" "$file.json" env $kestrel_steps KESTREL_BENCH_THROUGHPUT_ONLY=1 \
    KESTREL_BENCH_IMGSZ="${size%x*}" KESTREL_BENCH_BATCH="${size#*x}" KESTREL_BENCH_AMP=$amp \
    "$top/bin/kestrel" bench --json --only finetune_step
  head -c 400 "$file.json" >&2
done

# --- PyTorch: train.py's step, the same cases ------------------------------------------------------------------
if [ -n "$python" ]; then
  t=$(left 5); [ "$t" -gt "$torch_cap" ] && t=$torch_cap
  say "PyTorch step, all cases, limit ${t} s"
  # It starts no case after --budget seconds; the time limit, a little longer, ends a case that overruns.
  # shellcheck disable=SC2086 # torch_steps is flags
  limited "$t" "$results/torch.status" "$results/torch.jsonl" "$python" "$top/bench/gpu_bench_torch.py" \
    --yolov5 "$top/yolov5" --weights "$top/reference/models/yolov5n.pt" \
    --golden "$top/reference/golden/finetune-sgd" --cases "$cases" --budget $((t - 20)) $torch_steps
  cat "$results/torch.jsonl" >&2
fi

# --- the table --------------------------------------------------------------------------------------------------
"$top/bin/deno" run --no-config --no-remote --allow-read "$top/bench/gpu_bench_table.ts" "$results" "$cases" \
  "$(date -u +%Y-%m-%d)" >"$work/table.md"
say "done; results and logs in $results; the table is $work/table.md"
echo
cat "$work/table.md"
