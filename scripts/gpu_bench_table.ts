/**
 * The one table scripts/gpu_bench.sh prints, as Markdown ready for the README: one row per case with the adapter,
 * Kestrel's finetune_step images/s, PyTorch's images/s (train.py's step, scripts/gpu_bench_torch.py), their ratio
 * (Kestrel / PyTorch: >= 1 meets the issue's goal) and the date; then notes on what ran where. Reads what the script
 * left in its results folder:
 *   kestrel-<case>.json    the `bench --json --only finetune_step` line of that case (may be empty)
 *   kestrel-<case>.status  "exit N", "timeout N", or "skipped: why"
 *   torch.jsonl            gpu_bench_torch.py's lines, one per case it reached
 *   torch.status           the same for the PyTorch run as a whole
 *   conv_shapes.json       the conv_shapes bench line
 *   doctor.txt             `kestrel doctor`'s report
 * Usage: deno run --no-config --allow-read gpu_bench_table.ts RESULTS_DIR CASES DATE   (CASES like 320x8:f32,...)
 * Runs with no imports: the package's Deno runs it without the app's config.
 */

type Line = Record<string, unknown>;

function read(dir: string, name: string): string {
  try {
    return Deno.readTextFileSync(`${dir}/${name}`).trim();
  } catch {
    return "";
  }
}

/** The JSON lines of a file; a line that is not JSON (a crash's output) is skipped, its status says what happened. */
function jsonLines(text: string): Line[] {
  return text.split("\n").flatMap((l) => {
    try {
      const value = JSON.parse(l);
      return value && typeof value === "object" ? [value as Line] : [];
    } catch {
      return [];
    }
  });
}

/** Why a run gave no figure, from its status file ("exit N", "timeout N", "skipped: why"). */
function why(status: string, fallback: string): string {
  if (status.startsWith("timeout ")) return `timeout (${status.slice(8)} s)`;
  if (status.startsWith("skipped")) return status;
  if (status.startsWith("exit ") && status !== "exit 0") return `failed (${status})`;
  return fallback;
}

/** A result line's figure, or what it says instead (skipped, error). */
function cell(line: Line | undefined, status: string): { text: string; value?: number } {
  if (line && typeof line.images_per_s === "number") {
    return { text: line.images_per_s.toFixed(2), value: line.images_per_s };
  }
  if (line && typeof line.skipped === "string") return { text: line.skipped };
  if (line && typeof line.error === "string") return { text: `error: ${line.error.slice(0, 80)}` };
  return { text: why(status, "no result") };
}

export function table(dir: string, cases: string[], date: string): string {
  const doctor = read(dir, "doctor.txt");
  const adapterLine = /webgpu adapter: (.*)/.exec(doctor)?.[1] ?? "";
  const fallback = adapterLine.includes("fallback (software)");
  const torchLines = jsonLines(read(dir, "torch.jsonl"));
  const torchStatus = read(dir, "torch.status");
  const rows: string[][] = [];
  const kestrelAdapters = new Set<string>();
  for (const c of cases) {
    const file = `kestrel-${c.replace(":", "-")}`;
    const kestrelLine = jsonLines(read(dir, `${file}.json`))[0];
    const kestrel = cell(kestrelLine, read(dir, `${file}.status`));
    if (c.endsWith(":amp") && kestrelLine?.amp !== true && kestrel.value !== undefined) {
      // The bench ran, but in f32: it ignored the option, so this is no amp figure.
      kestrel.text = "amp: not available (the bench ran f32)";
      kestrel.value = undefined;
    }
    if (typeof kestrelLine?.adapter === "string") {
      kestrelAdapters.add(`${kestrelLine.adapter}${kestrelLine.fallback ? " (fallback)" : ""}`);
    }
    const torchLine = torchLines.find((l) => l.case === c);
    const torch = torchLine ? cell(torchLine, "") : { text: why(torchStatus, "not run") };
    const device = typeof torchLine?.device === "string" && torch.value !== undefined
      ? ` (${torchLine.device === "cpu" ? "cpu" : "cuda"})`
      : "";
    const ratio = kestrel.value !== undefined && torch.value !== undefined
      ? (kestrel.value / torch.value).toFixed(2)
      : "-";
    const [size, precision] = c.split(":");
    const [imgsz, batch] = size.split("x");
    rows.push([
      [...kestrelAdapters][0] ??
        (adapterLine ? `${adapterLine.split(";")[0]}${fallback ? " (fallback)" : ""}` : "unknown"),
      `yolov5n ${imgsz} b${batch} ${precision}`,
      kestrel.text,
      `${torch.text}${device}`,
      ratio,
      date,
    ]);
  }
  const header = ["adapter", "case", "Kestrel images/s", "PyTorch images/s", "ratio", "date"];
  const out = [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.map((v) => v.replaceAll("|", "/")).join(" | ")} |`),
  ];
  const notes: string[] = [];
  notes.push(
    `adapter: ${adapterLine || "(doctor gave no adapter line)"}${
      fallback ? "  <-- FALLBACK (software) adapter: not GPU figures" : ""
    }`,
  );
  const conv = jsonLines(read(dir, "conv_shapes.json"))[0];
  notes.push(
    conv && typeof conv.fwd_gflops === "number"
      ? `conv_shapes (${conv.imgsz}, batch ${conv.batch}): fwd ${conv.fwd_gflops}, bwd_data ${conv.bwd_data_gflops}, ` +
        `bwd_weight ${conv.bwd_weight_gflops} GFLOP/s; ${conv.conv_ms_per_step} ms of convs per step`
      : `conv_shapes: ${conv?.error ?? why(read(dir, "conv_shapes.status"), "no result")}`,
  );
  const torchInfo = torchLines.find((l) => typeof l.torch === "string");
  notes.push(
    torchInfo
      ? `PyTorch ${torchInfo.torch} on ${torchInfo.device}; model ${
        torchLines.find((l) => typeof l.model === "string")?.model ?? "-"
      }; stand-ins for modules the step never calls: ${
        (torchInfo.stand_ins as string[]).join(", ") || "none"
      }`
      : `PyTorch: ${why(torchStatus, "not run")}`,
  );
  notes.push(
    "step = forward + loss + backward + clip + SGD step, optimizer every step, no EMA, on both sides; " +
      "ratio = Kestrel / PyTorch (>= 1: Kestrel at least as fast)",
  );
  return [...out, "", ...notes.map((n) => `- ${n}`)].join("\n");
}

if (import.meta.main) {
  const [dir, cases, date] = Deno.args;
  if (!dir || !cases || !date) {
    console.error("Usage: gpu_bench_table.ts RESULTS_DIR CASES DATE");
    Deno.exit(2);
  }
  console.log(table(dir, cases.split(","), date));
}
