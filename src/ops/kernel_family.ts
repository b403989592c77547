/**
 * Which family of GEMM kernels conv runs on a device. `register` (wgsl/ops/conv.wgsl): each invocation owns an
 * 8x8 block of C and reads its operands straight from global memory, tuned for lavapipe, where there is no
 * fast workgroup memory. `tiled` (wgsl/ops/gemm_tiled.wgsl): workgroups stage operand slices in workgroup
 * memory, which real GPUs need to feed their ALUs. Fallback (software) adapters get `register`, hardware
 * adapters `tiled`; KESTREL_KERNELS=tiled|register forces one (e.g. to compare them, or to test `tiled` on
 * lavapipe).
 * @module
 */

export const KERNEL_FAMILIES = ["tiled", "register"] as const;
export type KernelFamily = (typeof KERNEL_FAMILIES)[number];

export const KERNELS_ENV = "KESTREL_KERNELS";

/** The family KESTREL_KERNELS forces, or undefined when it is unset or empty; any other value throws. */
export function forcedKernelFamily(): KernelFamily | undefined {
  const value = Deno.env.get(KERNELS_ENV);
  if (!value) return undefined;
  if (!(KERNEL_FAMILIES as readonly string[]).includes(value)) {
    throw new Error(
      `${KERNELS_ENV}=${value} is not a kernel family: expected one of ${KERNEL_FAMILIES.join(", ")}`,
    );
  }
  return value as KernelFamily;
}

/** The family conv runs on `device`, and why (for `kestrel doctor` and the finetune summary). */
export function kernelChoice(device: GPUDevice): { family: KernelFamily; reason: string } {
  const forced = forcedKernelFamily();
  if (forced) return { family: forced, reason: `forced by ${KERNELS_ENV}` };
  return device.adapterInfo.isFallbackAdapter
    ? { family: "register", reason: "fallback adapter" }
    : { family: "tiled", reason: "hardware adapter" };
}
