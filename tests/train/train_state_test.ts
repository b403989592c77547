// The checkpoint state's position: a mid-epoch state round-trips its epoch, iteration and batch-stream cursor;
// a state written before mid-epoch checkpoints existed (no iteration, no cursor) reads as an epoch start; one
// that claims batches of an epoch without saying where its stream continues is refused.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { createStorage, readF32 } from "../../src/gpu/buffers.ts";
import { epochStart, type LoopPosition } from "../../src/train/loop.ts";
import { captureState, restoreState, type StateBuffer } from "../../src/train/train_state.ts";

const FLOATS = 4;

/** The state's bytes with its JSON header changed by `edit`. */
function withHeader(bytes: Uint8Array, edit: (header: Record<string, unknown>) => void): Uint8Array {
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  edit(header);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = Math.ceil((8 + json.length) / 4) * 4;
  const body = bytes.subarray(Math.ceil((8 + length) / 4) * 4);
  const out = new Uint8Array(headerBytes + body.length);
  out.set(bytes.subarray(0, 4));
  new DataView(out.buffer).setUint32(4, json.length, true);
  out.set(json, 8);
  out.set(body, headerBytes);
  return out;
}

gpuTest("a training state keeps its position; older states are epoch starts", async (device) => {
  const buffer = (label: string, values: number[]) => {
    const b = createStorage(device, FLOATS * 4, label);
    device.queue.writeBuffer(b, 0, new Float32Array(values));
    return b;
  };
  const params = buffer("params", [1, 2, 3, 4]);
  const grads = buffer("grads", [5, 6, 7, 8]);
  const at = (withGrads: boolean): StateBuffer[] => [
    { name: "params", buffer: params, floats: FLOATS },
    ...(withGrads ? [{ name: "grads", buffer: grads, floats: FLOATS }] : []),
  ];
  const position: LoopPosition = { epoch: 2, iteration: 3, cursor: { batch: 3, rng: [1, 2, 3, 4] } };
  const state = await captureState(device, position, FLOATS, at(true));
  device.queue.writeBuffer(grads, 0, new Float32Array(FLOATS));
  assert.deepEqual(restoreState(device, state, FLOATS, (p) => at(p.iteration > 0)).position, position);
  assert.deepEqual(Array.from(await readF32(device, grads, FLOATS)), [5, 6, 7, 8]);

  const old = withHeader(await captureState(device, epochStart(1), FLOATS, at(false)), (h) => {
    delete h.iteration;
    delete h.cursor;
  });
  assert.deepEqual(restoreState(device, old, FLOATS, (p) => at(p.iteration > 0)).position, epochStart(1));

  const lost = withHeader(state, (h) => h.cursor = null);
  assert.throws(
    () => restoreState(device, lost, FLOATS, (p) => at(p.iteration > 0)),
    /without where they continue/,
  );
  params.destroy();
  grads.destroy();
});
