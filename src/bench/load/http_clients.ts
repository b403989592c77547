/**
 * A load generator run in a Web Worker, so the clients' own work (fetch, reading answers) runs on another thread
 * than the server's event loop, as a separate client process would. Message in: a {@link LoadRequest}; message
 * out: a {@link LoadResult}.
 */

export interface LoadRequest {
  url: string;
  body: Uint8Array<ArrayBuffer>;
  contentType: string;
  /** Clients sending at once, each one request after the other over a kept-alive connection. */
  clients: number;
  /** Requests in all, shared out among the clients. */
  requests: number;
}

export interface LoadResult {
  /** Milliseconds from send to the last byte of the answer, per request with a 200. */
  latencies: number[];
  /** Answers by HTTP status. */
  statuses: Record<string, number>;
  elapsedMs: number;
}

async function load({ url, body, contentType, clients, requests }: LoadRequest): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let sent = 0;
  const client = async () => {
    while (sent < requests) {
      sent++;
      const t = performance.now();
      const res = await fetch(url, { method: "POST", body, headers: { "content-type": contentType } });
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.status === 200) latencies.push(performance.now() - t);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: clients }, client));
  return { latencies, statuses, elapsedMs: performance.now() - start };
}

/** The worker side of the channel (the project's lib is deno.window, so `self` is typed as a window). */
const port = self as unknown as {
  postMessage(message: LoadResult): void;
  onmessage: ((e: MessageEvent<LoadRequest>) => void) | null;
};

port.onmessage = async (e) => port.postMessage(await load(e.data));
