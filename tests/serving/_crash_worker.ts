// Makes the next message any Worker is sent one its entry module does not know: an inference worker throws on
// it, uncaught, which is how a crash of the worker's thread reaches its owner.
export function crashNextWorkerCall(): void {
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (this: Worker, message: unknown, transfer?: unknown) {
    Worker.prototype.postMessage = post;
    return post.call(
      this,
      { ...(message as object), type: "not-a-message" },
      transfer as StructuredSerializeOptions,
    );
  };
}
