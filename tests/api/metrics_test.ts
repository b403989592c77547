import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Registry } from "../../src/api/metrics.ts";

Deno.test("Registry.render() writes Prometheus text: counters by label set, cumulative buckets, gauges", () => {
  const registry = new Registry();
  const requests = registry.add(new Counter("req_total", "Requests"));
  const latency = registry.add(new Histogram("lat_seconds", "Latency", [0.1, 1]));
  registry.add(new Gauge("depth", "Queue depth", () => [[{ model: 'a"b' }, 3]]));
  requests.inc({ route: "/x", status: "200" });
  requests.inc({ route: "/x", status: "200" });
  requests.inc({ route: "/x", status: "415" });
  for (const v of [0.05, 0.5, 5]) latency.observe(v, { route: "/x" });
  assert.equal(
    registry.render(),
    [
      "# HELP req_total Requests",
      "# TYPE req_total counter",
      'req_total{route="/x",status="200"} 2',
      'req_total{route="/x",status="415"} 1',
      "# HELP lat_seconds Latency",
      "# TYPE lat_seconds histogram",
      'lat_seconds_bucket{route="/x",le="0.1"} 1',
      'lat_seconds_bucket{route="/x",le="1"} 2',
      'lat_seconds_bucket{route="/x",le="+Inf"} 3',
      'lat_seconds_sum{route="/x"} 5.55',
      'lat_seconds_count{route="/x"} 3',
      "# HELP depth Queue depth",
      "# TYPE depth gauge",
      'depth{model="a\\"b"} 3',
      "",
    ].join("\n"),
  );
});
