// A worker that says it started, then waits: liveWorkerThreads() sees its thread until it is terminated.
(self as unknown as { postMessage(message: string): void }).postMessage("started");
