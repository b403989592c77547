/**
 * onnxruntime-node, the one way the code loads it: with its telemetry off. onnxruntime 1.30's Linux build carries
 * Microsoft's 1DS telemetry client, started with the first session: it writes an empty `mat-debug-<pid>.log` and
 * a `.ses` file into $TMPDIR for every process (they pile up, one per server start, CLI call and test process) and
 * tries HTTPS uploads. A box next to a site's cameras must not phone home. The library reads
 * `ORT_DISABLE_TELEMETRY` when that first session is created, so setting it here, before any importer can create
 * one, is enough; an operator's own value is left alone.
 */
if (Deno.env.get("ORT_DISABLE_TELEMETRY") === undefined) Deno.env.set("ORT_DISABLE_TELEMETRY", "1");

export * from "onnxruntime-node";
