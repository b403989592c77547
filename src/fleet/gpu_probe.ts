/**
 * The box's GPU adapter for the fleet: its name (reported in `GET /v1/fleet`) and whether it is hardware, which
 * `--jobs auto` asks (a software adapter such as lavapipe does not count). Null without any adapter.
 * @module
 */

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software/i;

export async function probeGpu(): Promise<{ name: string; hardware: boolean } | null> {
  const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" }).catch(() =>
    null
  );
  if (!adapter) return null;
  const { isFallbackAdapter, description, device, vendor, architecture } = adapter.info;
  const name = description || `${vendor} ${architecture} ${device}`.trim();
  return { name, hardware: !isFallbackAdapter && !SOFTWARE_ADAPTER.test(`${name} ${device} ${vendor}`) };
}
