/**
 * This node's detects of the last minute, per model version: how many and their median latency, for its presence
 * record, so `GET /v1/fleet` and the dashboard can put a canary's numbers beside the other nodes' before it is
 * promoted. Kept in one-second buckets, each holding its exact count and the latencies of its first
 * {@link SAMPLES_PER_SECOND} detects, so memory is bounded however busy the node is.
 * @module
 */

/** The window the summary covers. */
export const DETECT_WINDOW_MS = 60_000;
/** Latencies kept per second and version: the median of a busy second is that of its first detects. */
const SAMPLES_PER_SECOND = 200;

export interface DetectSummary {
  model: string;
  version: number;
  /** Detects in the last minute. */
  count: number;
  /** Their median latency in ms (server time: session queue, decode, inference, post-processing). */
  p50_ms: number;
}

interface Bucket {
  second: number;
  count: number;
  samples: number[];
}

export class DetectWindow {
  /** Per `model\0version`, buckets oldest first. */
  private readonly buckets = new Map<string, Bucket[]>();

  constructor(private readonly now: () => number = Date.now) {}

  observe(model: string, version: number, ms: number): void {
    const key = `${model}\0${version}`;
    const second = Math.floor(this.now() / 1000);
    const buckets = this.prune(key) ?? [];
    let last = buckets.at(-1);
    if (last?.second !== second) buckets.push(last = { second, count: 0, samples: [] });
    last.count++;
    if (last.samples.length < SAMPLES_PER_SECOND) last.samples.push(ms);
    this.buckets.set(key, buckets);
  }

  /** Every model version detected on in the last minute, by model name then version. */
  summary(): DetectSummary[] {
    const out: DetectSummary[] = [];
    for (const key of [...this.buckets.keys()]) {
      const buckets = this.prune(key);
      if (!buckets) continue;
      const [model, version] = key.split("\0");
      const samples = buckets.flatMap((b) => b.samples).sort((a, b) => a - b);
      out.push({
        model,
        version: Number(version),
        count: buckets.reduce((n, b) => n + b.count, 0),
        p50_ms: median(samples),
      });
    }
    return out.sort((a, b) => a.model.localeCompare(b.model) || a.version - b.version);
  }

  /** The key's buckets still in the window; the key is dropped when none is. */
  private prune(key: string): Bucket[] | null {
    const oldest = Math.floor((this.now() - DETECT_WINDOW_MS) / 1000);
    const buckets = this.buckets.get(key)?.filter((b) => b.second > oldest) ?? [];
    if (buckets.length === 0) {
      this.buckets.delete(key);
      return null;
    }
    this.buckets.set(key, buckets);
    return buckets;
  }
}

/** The median of sorted, non-empty `xs` (the mean of the middle two for an even count). */
function median(xs: number[]): number {
  const mid = xs.length >> 1;
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}
