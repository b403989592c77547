/**
 * A minimal Prometheus text-format registry (exposition format 0.0.4): counters and histograms with labels,
 * plus gauges read at scrape time. Hand-written because it is ~100 lines and a client library would bring a
 * default Node process collector that makes no sense under Deno.
 */
type Labels = Record<string, string>;

const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const labelText = (labels: Labels) => {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
};

interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} counter`,
      ...[...this.values].map(([k, v]) => `${this.name}${k} ${v}`),
    ];
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; count: number }
  >();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {}

  observe(value: number, labels: Labels = {}): void {
    const key = labelText(labels);
    let s = this.series.get(key);
    if (!s) this.series.set(key, s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 });
    this.buckets.forEach((le, i) => value <= le && s.counts[i]++);
    s.sum += value;
    s.count++;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const { labels, counts, sum, count } of this.series.values()) {
      counts.forEach((c, i) =>
        lines.push(`${this.name}_bucket${labelText({ ...labels, le: String(this.buckets[i]) })} ${c}`)
      );
      lines.push(`${this.name}_bucket${labelText({ ...labels, le: "+Inf" })} ${count}`);
      lines.push(
        `${this.name}_sum${labelText(labels)} ${sum}`,
        `${this.name}_count${labelText(labels)} ${count}`,
      );
    }
    return lines;
  }
}

/** A gauge whose samples are computed when scraped (queue depth, active versions). */
export class Gauge implements Metric {
  constructor(readonly name: string, readonly help: string, readonly read: () => [Labels, number][]) {}

  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} gauge`,
      ...this.read().map(([labels, v]) => `${this.name}${labelText(labels)} ${v}`),
    ];
  }
}

/** A counter kept elsewhere (a subsystem's own tallies), read when scraped. */
export class ReadCounter implements Metric {
  constructor(readonly name: string, readonly help: string, readonly read: () => [Labels, number][]) {}

  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} counter`,
      ...this.read().map(([labels, v]) => `${this.name}${labelText(labels)} ${v}`),
    ];
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  add<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }

  render(): string {
    return this.metrics.flatMap((m) => m.render()).join("\n") + "\n";
  }
}

/** Seconds; spans a sub-millisecond health check to a multi-second WebGPU inference on a software adapter. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
