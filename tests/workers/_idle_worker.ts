// A worker that says it started, then waits: workerThreadCount() sees its thread until it is terminated.
(self as unknown as { postMessage(message: string): void }).postMessage("started");
