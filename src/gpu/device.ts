import { ensureRuntimeDir } from "./runtime_dir.ts";

/** The one WebGPU device Kestrel computes on, with the adapter facts that decide backend and kernel choices. */
export interface Gpu {
  device: GPUDevice;
  /** Human-readable adapter description, reported in benchmarks and logs. */
  adapterName: string;
  /** True for software adapters such as Mesa's lavapipe: tuned and reported differently from real GPUs. */
  isFallback: boolean;
  hasF16: boolean;
  hasTimestamps: boolean;
}

/**
 * Workgroups per dimension of one dispatch that every WebGPU device allows (the default of
 * maxComputeWorkgroupsPerDimension): kernels plan their grids against it, whatever the adapter offers above.
 */
export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

let shared: Promise<Gpu> | undefined;

/** Returns the process-wide device, created on first use with the adapter's largest buffer limits. */
export function getGpu(): Promise<Gpu> {
  shared ??= requestGpu();
  return shared;
}

async function requestGpu(): Promise<Gpu> {
  ensureRuntimeDir();
  if (!("gpu" in navigator)) {
    throw new Error("WebGPU is not available in this runtime (navigator.gpu missing)");
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new Error(
      "No WebGPU adapter found: install a GPU driver, or Mesa's lavapipe (mesa-vulkan-drivers)",
    );
  }
  const wanted: GPUFeatureName[] = ["shader-f16", "timestamp-query"];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
  const info = adapter.info;
  return {
    device,
    adapterName: info.description || `${info.vendor} ${info.architecture} ${info.device}`.trim(),
    isFallback: info.isFallbackAdapter ?? false,
    hasF16: requiredFeatures.includes("shader-f16"),
    hasTimestamps: requiredFeatures.includes("timestamp-query"),
  };
}
