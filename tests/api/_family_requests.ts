import sharp from "sharp";

/** Sends a request to the app under test (app.request from loopback). */
export type Call = (path: string, init?: RequestInit) => Response | Promise<Response>;

/**
 * One detect request of each API family for `model`: native and DeepStack with the same small JPEG, KServe v2
 * with a constant tensor of the model's input side `imgsz`. Each function of `send` sends a fresh request;
 * `image` is the JPEG they send.
 */
export async function familyDetectRequests(call: Call, model: string, imgsz: number) {
  const image = new Uint8Array(
    await sharp({ create: { width: 48, height: 32, channels: 3, background: { r: 90, g: 140, b: 60 } } })
      .jpeg().toBuffer(),
  );
  const tensor = {
    inputs: [{
      name: "images",
      shape: [1, 3, imgsz, imgsz],
      datatype: "FP32",
      data: new Array(3 * imgsz * imgsz).fill(0.5),
    }],
  };
  const send = {
    native: () =>
      call(`/v1/models/${model}/detect`, {
        method: "POST",
        body: image,
        headers: { "content-type": "image/jpeg" },
      }),
    deepstack: () => {
      const form = new FormData();
      form.append("image", new Blob([image], { type: "image/jpeg" }), "frame.jpg");
      return call("/v1/vision/detection", { method: "POST", body: form });
    },
    v2: () =>
      call(`/v2/models/${model}/infer`, {
        method: "POST",
        body: JSON.stringify(tensor),
        headers: { "content-type": "application/json" },
      }),
  };
  return { image, send };
}
