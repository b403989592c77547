/**
 * Capture's tallies on /metrics: frames stored, evicted and dropped (by reason), frames left unchecked, and the
 * queue's depth.
 */
import type { CaptureService, DropReason } from "../capture/service.ts";
import { Gauge, ReadCounter, type Registry } from "./metrics.ts";

export function addCaptureMetrics(registry: Registry, capture: CaptureService): void {
  const { counts } = capture;
  registry.add(
    new ReadCounter(
      "kestrel_capture_stored_total",
      "Frames captured and written",
      () => [[{}, counts.stored]],
    ),
  );
  registry.add(
    new ReadCounter(
      "kestrel_capture_evicted_total",
      "Unlabelled captures deleted to stay under a model's max_bytes",
      () => [[{}, counts.evicted]],
    ),
  );
  registry.add(
    new ReadCounter(
      "kestrel_capture_dropped_total",
      "Frames a capture policy kept but that were not stored, by reason",
      () => Object.entries(counts.dropped).map(([reason, n]) => [{ reason: reason as DropReason }, n]),
    ),
  );
  registry.add(
    new ReadCounter(
      "kestrel_capture_unchecked_total",
      "Frames outside the uncertain band not compared with the previous version (the capture queue was busy)",
      () => [[{}, counts.unchecked]],
    ),
  );
  registry.add(
    new Gauge("kestrel_capture_queue_depth", "Captured frames waiting to be written", () => [
      [{}, capture.queueDepth],
    ]),
  );
}
