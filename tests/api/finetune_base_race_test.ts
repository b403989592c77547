/**
 * A fine-tune whose base version is deleted while its upload streams in (the soak bench found it as a 500: the
 * route resolved the base before the body and read its file after): the client gets 409 `conflict`.
 */
import assert from "node:assert/strict";
import { zipSync } from "fflate";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { expectError, openTestApp } from "./_app_setup.ts";

const BOUNDARY = "kestrel-race";
const enc = new TextEncoder();

Deno.test("fine-tune: the base version deleted during the upload answers 409 conflict, not 500", async () => {
  const t = await openTestApp();
  try {
    const v2 = await t.registry.add("tiny", tinyYolo({ seed: 2 }), {
      source: { type: "upload" },
      activate: true,
    });
    const head = enc.encode(
      `--${BOUNDARY}\r\ncontent-disposition: form-data; name="config"\r\n\r\n{"epochs": 1, "imgsz": 64}\r\n` +
        `--${BOUNDARY}\r\ncontent-disposition: form-data; name="dataset"; filename="d.zip"\r\n` +
        `content-type: application/zip\r\n\r\n`,
    );
    const tail = [zipSync({ "images/a.txt": new Uint8Array(4) }), enc.encode(`\r\n--${BOUNDARY}--\r\n`)];
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (pulls++ === 0) return controller.enqueue(head);
        // The route has resolved v2 as the base and is reading the body: a client rolls back and deletes v2.
        await t.registry.activate("tiny", 1);
        await t.registry.remove("tiny", v2.version);
        for (const chunk of tail) controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = t.call("/v1/models/tiny/finetune", {
      method: "POST",
      body,
      headers: { "content-type": `multipart/form-data; boundary=${BOUNDARY}` },
      duplex: "half",
    } as RequestInit);
    const error = await expectError(res, 409, "conflict");
    assert.match(error.message, /deleted while the upload was received/);
    assert.equal(t.jobs.list().length, 0, "no job was queued");
  } finally {
    await t.close();
  }
});
