/**
 * What the DeepStack clients Kestrel must serve put on the wire and how they read the answer, written from
 * their public source (read, not copied):
 * - Frigate's `deepstack` detector (frigate/detectors/plugins/deepstack.py): encodes the model-size frame as a
 *   JPEG, POSTs it with python-requests as `data={"api_key": <api_key, default "">}` and
 *   `files={"image": <jpeg bytes>}` to `api_url` with `timeout=api_timeout` (default 0.1 s); calls `.json()`,
 *   returns 20 zero rows when `predictions` is missing, otherwise walks `predictions` in order and stops at the
 *   first with confidence < 0.4 or with a label not in its labelmap (lower-cased; "truck" read as "car");
 *   each row is [label index, confidence, y_min/h, x_min/w, y_max/h, x_max/w].
 * - robmarkcole's deepstack-python (`deepstack/core.py`, DeepstackObject): URL
 *   `http://{ip}:{port}/v1/vision/detection`, or `/v1/vision/custom/{custom_model}`; POSTs
 *   `data={"api_key": api_key, "min_confidence": min_confidence}` (default "" and 0.45) and
 *   `files={"image": image_bytes}` with `timeout` (default 10 s); 200 -> `.json()["predictions"]`, 404 ->
 *   "Bad url" error, anything else -> an error with the status code.
 */

/**
 * The multipart body python-requests (urllib3's encode_multipart_formdata) builds for `data=` and `files=`
 * with bytes values: a 32-hex-digit boundary, the data fields first (values str()-ed), then the files, each
 * file part named after its key, with `filename` = the key and no Content-Type of its own.
 */
export function requestsMultipart(
  data: [string, string][],
  files: [string, Uint8Array<ArrayBuffer>][],
): { body: Uint8Array<ArrayBuffer>; contentType: string } {
  const boundary = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  const enc = new TextEncoder();
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for (const [name, value] of data) {
    parts.push(
      enc.encode(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  }
  for (const [name, bytes] of files) {
    parts.push(
      enc.encode(
        `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}"\r\n\r\n`,
      ),
      bytes,
      enc.encode("\r\n"),
    );
  }
  parts.push(enc.encode(`--${boundary}--\r\n`));
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (body.set(p, at), at + p.length), 0);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

/** python-requests' default headers, sent by both clients. */
const REQUESTS_HEADERS = {
  "user-agent": "python-requests/2.32.3",
  "accept-encoding": "gzip, deflate",
  accept: "*/*",
  connection: "keep-alive",
};

/** `requests.post(url, data=..., files=..., timeout=...)`. */
export function requestsPost(
  url: string,
  data: [string, string][],
  files: [string, Uint8Array<ArrayBuffer>][],
  timeoutS: number,
): Promise<Response> {
  const { body, contentType } = requestsMultipart(data, files);
  return fetch(url, {
    method: "POST",
    body,
    headers: { ...REQUESTS_HEADERS, "content-type": contentType },
    signal: AbortSignal.timeout(timeoutS * 1000),
  });
}

/** Frigate's DeepstackDetectorConfig defaults. */
export const FRIGATE_DEFAULTS = { api_timeout: 0.1, api_key: "" };
/** Frigate's detector output: 20 rows of [label, confidence, y_min, x_min, y_max, x_max] (normalised). */
export const FRIGATE_ROWS = 20;
const FRIGATE_MIN_CONFIDENCE = 0.4;

/** Frigate's DeepStack.detect_raw after the JPEG encoding: request, then parse into its float32 rows. */
export async function frigateDetectRaw(
  config: { api_url: string; api_timeout: number; api_key: string; labels: Record<number, string> },
  jpeg: Uint8Array<ArrayBuffer>,
  width: number,
  height: number,
): Promise<Float32Array[]> {
  const res = await requestsPost(
    config.api_url,
    [["api_key", config.api_key]],
    [["image", jpeg]],
    config.api_timeout,
  );
  const json = await res.json();
  const rows = Array.from({ length: FRIGATE_ROWS }, () => new Float32Array(6));
  if (json.predictions === undefined || json.predictions === null) return rows;
  const labelIndex = (label: string) => {
    const wanted = label.toLowerCase() === "truck" ? "car" : label.toLowerCase();
    const hit = Object.entries(config.labels).find(([, v]) => v === wanted);
    return hit ? Number(hit[0]) : -1;
  };
  for (const [i, d] of (json.predictions as Record<string, number & string>[]).entries()) {
    if (d.confidence < FRIGATE_MIN_CONFIDENCE) break;
    const label = labelIndex(d.label);
    if (label < 0) break;
    rows[i].set([label, d.confidence, d.y_min / height, d.x_min / width, d.y_max / height, d.x_max / width]);
  }
  return rows;
}

export class DeepstackException extends Error {}

/** deepstack-python's DeepstackObject defaults. */
export const DEEPSTACK_PYTHON_DEFAULTS = { api_key: "", timeout: 10, min_confidence: 0.45 };

/** Python's str() of a float, as requests sends a form value (0.45 -> "0.45", 1 -> "1.0"). */
export function pythonStr(x: number): string {
  return Number.isInteger(x) ? `${x}.0` : String(x);
}

/** DeepstackObject(ip, port, api_key, timeout, min_confidence, custom_model).detect(image_bytes). */
export async function deepstackPythonDetect(
  opts: {
    ip: string;
    port: number;
    api_key?: string;
    timeout?: number;
    min_confidence?: number;
    custom_model?: string;
  },
  imageBytes: Uint8Array<ArrayBuffer>,
): Promise<Record<string, unknown>[]> {
  const { api_key, timeout, min_confidence } = { ...DEEPSTACK_PYTHON_DEFAULTS, ...opts };
  const path = opts.custom_model ? `/custom/${opts.custom_model}` : "/detection";
  const url = `http://${opts.ip}:${opts.port}/v1/vision${path}`;
  const res = await requestsPost(
    url,
    [["api_key", api_key], ["min_confidence", pythonStr(min_confidence)]],
    [["image", imageBytes]],
    timeout,
  );
  if (res.status === 200) return (await res.json()).predictions;
  await res.body?.cancel();
  if (res.status === 404) throw new DeepstackException(`Bad url supplied, url ${url} raised error 404`);
  throw new DeepstackException(`Error from Deepstack request, status code: ${res.status}`);
}

/** deepstack-python's get_objects_summary: label -> count. */
export function getObjectsSummary(predictions: { label: string }[]): Record<string, number> {
  const labels = [...new Set(predictions.map((p) => p.label))].sort();
  return Object.fromEntries(labels.map((l) => [l, predictions.filter((p) => p.label === l).length]));
}
