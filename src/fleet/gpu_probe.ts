/** `--jobs auto`: whether this box has a hardware GPU adapter (a software one such as lavapipe does not count). */

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software/i;

export async function hasHardwareGpu(): Promise<boolean> {
  const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" }).catch(() =>
    null
  );
  if (!adapter) return false;
  const { isFallbackAdapter, description, device, vendor } = adapter.info;
  return !isFallbackAdapter && !SOFTWARE_ADAPTER.test(`${description} ${device} ${vendor}`);
}
