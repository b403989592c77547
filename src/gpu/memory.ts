/**
 * The owner of a component's GPU buffers, as onnxruntime-web's GpuDataManager and tfjs-webgpu's BufferManager
 * are: a training program, an optimizer or an EMA allocates every buffer it keeps through its GpuMemory, which
 * counts the bytes, hands a released buffer to the next request of the same size and usage, and destroys all it
 * holds in destroy(). A finished job or a swapped program so frees its GPU memory when its owner says so, not
 * whenever a garbage collector reaches the JavaScript wrappers (WebGPU buffers hold their memory until then).
 *
 * @example
 * ```ts
 * const memory = new GpuMemory(device);
 * const x = memory.storage(1024, "x");
 * memory.destroy(); // x and everything else it made are destroyed; liveGpuBytes() drops by their sizes
 * ```
 * @module
 */
import { STORAGE, storageSize } from "./buffers.ts";

const READBACK = GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
const UNIFORM = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;

/** Bytes held by every GpuMemory of this process that has not been destroyed (in use and pooled). */
let processBytes = 0;

/** GPU bytes held by all live GpuMemory owners of this process: what a finished job must give back. */
export function liveGpuBytes(): number {
  return processBytes;
}

export class GpuMemory {
  readonly #live = new Set<GPUBuffer>();
  /** Released buffers by usage and size, handed out again before anything new is created. */
  readonly #free = new Map<string, GPUBuffer[]>();
  #bytes = 0;
  #destroyed = false;

  constructor(readonly device: GPUDevice) {}

  /** Bytes this owner holds (buffers in use and released ones kept for reuse). */
  get bytes(): number {
    return this.#bytes;
  }

  /** A zero-filled storage buffer of `bytes` (rounded up to 16 so vec4 views never overrun), labelled. */
  storage(bytes: number, label: string): GPUBuffer {
    return this.#create(storageSize(bytes), STORAGE, label);
  }

  /** A storage buffer holding `data`. */
  upload(data: Float32Array | Uint32Array, label: string): GPUBuffer {
    const buffer = this.storage(data.byteLength, label);
    this.device.queue.writeBuffer(buffer, 0, data as Float32Array<ArrayBuffer>);
    return buffer;
  }

  /** A uniform buffer of `bytes` (rounded up to 16), written by its user (e.g. per step). */
  uniformBuffer(bytes: number, label: string): GPUBuffer {
    return this.#create(Math.max(16, Math.ceil(bytes / 16) * 16), UNIFORM, label);
  }

  /** A uniform buffer holding `data`, written once. */
  uniform(data: ArrayBuffer, label: string): GPUBuffer {
    const buffer = this.uniformBuffer(data.byteLength, label);
    this.device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  }

  /** A mappable buffer the GPU copies results into for the host to read (MAP_READ | COPY_DST). */
  readback(bytes: number, label: string): GPUBuffer {
    return this.#create(Math.ceil(bytes / 4) * 4, READBACK, label);
  }

  /** Gives `buffer` back: the next request of its size and usage reuses it (zero-filled again for storage). */
  release(buffer: GPUBuffer): void {
    if (!this.#live.delete(buffer)) {
      throw new Error(`GpuMemory: '${buffer.label}' is not a live buffer of this owner`);
    }
    const key = keyOf(buffer.size, buffer.usage);
    this.#free.set(key, [...(this.#free.get(key) ?? []), buffer]);
  }

  /** Destroys every buffer this owner made, in use or released; it makes none after this. */
  destroy(): void {
    for (const b of this.#live) b.destroy();
    for (const list of this.#free.values()) for (const b of list) b.destroy();
    this.#live.clear();
    this.#free.clear();
    processBytes -= this.#bytes;
    this.#bytes = 0;
    this.#destroyed = true;
  }

  #create(size: number, usage: number, label: string): GPUBuffer {
    if (this.#destroyed) throw new Error(`GpuMemory: '${label}' requested after destroy()`);
    const reused = this.#free.get(keyOf(size, usage))?.pop();
    if (reused) {
      this.#live.add(reused);
      // Callers rely on a new storage buffer reading as zeros (e.g. gradients that steps add into).
      if (usage === STORAGE) {
        const encoder = this.device.createCommandEncoder({ label: `clear reused ${label}` });
        encoder.clearBuffer(reused);
        this.device.queue.submit([encoder.finish()]);
      }
      return reused;
    }
    const buffer = this.device.createBuffer({ label, size, usage });
    this.#live.add(buffer);
    this.#bytes += size;
    processBytes += size;
    return buffer;
  }
}

function keyOf(size: number, usage: number): string {
  return `${usage}:${size}`;
}
