/**
 * A fine-tune's resumable state between two iterations, as bytes for the jobs checkpoint: the flat parameters,
 * the optimizer's state buffers (SGD momentum or Adam's m and v), the EMA copies and, within an epoch, the
 * gradients summed since the last optimizer step, each in the flat layout; and the position: the epoch, the
 * batches of it trained and where its batch stream continues. Host counters (schedule, optimizer steps, EMA
 * updates) follow from the position (and the GradScaler's skipped steps) and are replayed by the loop; the
 * GradScaler's state is kept in the header.
 *
 * Format: "KTS1", u32 header length, JSON header {epoch, iteration, cursor, layoutSize, buffers: [{name,
 * floats}], scaler?: {scale, growthTracker, skippedSteps}}, then the float32 little-endian contents of each buffer in header order (4-byte aligned). States
 * written before mid-epoch checkpoints existed have no iteration and cursor: they are epoch starts; states written
 * before amp have no scaler.
 * @module
 */
import { readF32 } from "../gpu/buffers.ts";
import type { GradScalerState } from "../optim/grad_scaler.ts";
import type { LoopPosition } from "./loop.ts";

const MAGIC = "KTS1";

export interface StateBuffer {
  name: string;
  buffer: GPUBuffer;
  /** floats to save */
  floats: number;
}

export interface StateHeader extends LoopPosition {
  layoutSize: number;
  buffers: { name: string; floats: number }[];
  scaler?: GradScalerState;
}

export async function captureState(
  device: GPUDevice,
  position: LoopPosition,
  layoutSize: number,
  buffers: StateBuffer[],
  scaler?: GradScalerState,
): Promise<Uint8Array> {
  const header: StateHeader = {
    epoch: position.epoch,
    iteration: position.iteration,
    cursor: position.cursor,
    layoutSize,
    buffers: buffers.map((b) => ({ name: b.name, floats: b.floats })),
    scaler,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = Math.ceil((8 + json.length) / 4) * 4;
  const total = headerBytes + buffers.reduce((s, b) => s + b.floats * 4, 0);
  const out = new Uint8Array(total);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(4, json.length, true);
  out.set(json, 8);
  let offset = headerBytes;
  for (const b of buffers) {
    const data = await readF32(device, b.buffer, b.floats);
    out.set(new Uint8Array(data.buffer, data.byteOffset, b.floats * 4), offset);
    offset += b.floats * 4;
  }
  return out;
}

/**
 * Parses a state and writes its buffers (`buffersAt` its position: which buffers a state there holds) back;
 * returns its position. Throws naming what does not match this run.
 */
export function restoreState(
  device: GPUDevice,
  bytes: Uint8Array,
  layoutSize: number,
  buffersAt: (position: LoopPosition) => StateBuffer[],
): { position: LoopPosition; scaler?: GradScalerState } {
  if (bytes.length < 8 || new TextDecoder().decode(bytes.subarray(0, 4)) !== MAGIC) {
    throw new Error(`Checkpoint state: not a Kestrel training state (expected magic ${MAGIC})`);
  }
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
  // Older states (epoch starts) have no iteration and cursor.
  const header: Omit<StateHeader, "iteration" | "cursor"> & Partial<LoopPosition> = JSON.parse(
    new TextDecoder().decode(bytes.subarray(8, 8 + length)),
  );
  const position: LoopPosition = {
    epoch: header.epoch,
    iteration: header.iteration ?? 0,
    cursor: header.cursor ?? null,
  };
  if (position.iteration > 0 && position.cursor?.batch !== position.iteration) {
    throw new Error(
      `Checkpoint state: ${position.iteration} batches into epoch ${position.epoch} without where they continue`,
    );
  }
  const buffers = buffersAt(position);
  if (header.layoutSize !== layoutSize) {
    throw new Error(
      `Checkpoint state: parameter layout of ${header.layoutSize} floats, this model has ${layoutSize}`,
    );
  }
  const names = buffers.map((b) => `${b.name}:${b.floats}`).join(",");
  const saved = header.buffers.map((b) => `${b.name}:${b.floats}`).join(",");
  if (names !== saved) throw new Error(`Checkpoint state: holds [${saved}], this run needs [${names}]`);
  let offset = Math.ceil((8 + length) / 4) * 4;
  const copy = new Uint8Array(bytes.length - offset);
  copy.set(bytes.subarray(offset));
  offset = 0;
  for (const b of buffers) {
    if (offset + b.floats * 4 > copy.length) throw new Error(`Checkpoint state: truncated in '${b.name}'`);
    device.queue.writeBuffer(b.buffer, 0, copy.buffer, offset, b.floats * 4);
    offset += b.floats * 4;
  }
  return { position, scaler: header.scaler };
}
