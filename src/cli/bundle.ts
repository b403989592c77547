import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { buildBundle } from "../bundle/build.ts";
import { hostTarget, target, TARGET_NAMES } from "../bundle/targets.ts";

const TARGETS = TARGET_NAMES.join("|");
const USAGE = `Usage: deno task bundle [--target ${TARGETS}] [--out dist] [--turbojpeg-lib PATH]`;

const BundleArgs = z.object({
  target: z.enum(TARGET_NAMES).optional(),
  out: z.string().min(1).default("dist"),
  /** The target's libturbojpeg.so.0 to carry (e.g. from its Debian libturbojpeg0 package) for the JPEG fast path. */
  "turbojpeg-lib": z.string().min(1).optional(),
});

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** `deno task bundle`: an offline tarball of Kestrel for one Linux target (see deploy/README.md). */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: "string" },
      out: { type: "string" },
      "turbojpeg-lib": { type: "string" },
    },
  });
  const parsed = BundleArgs.safeParse(values);
  if (!parsed.success) {
    console.error(`${z.prettifyError(parsed.error)}\n${USAGE}`);
    return 2;
  }
  const chosen = parsed.data.target ? target(parsed.data.target) : hostTarget();
  const result = await buildBundle(ROOT, chosen, parsed.data.out, parsed.data["turbojpeg-lib"]);
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  console.log(`${result.path}: ${mb(result.bytes)} compressed`);
  console.log(
    `largest parts (uncompressed): ${result.largest.map((p) => `${p.part} ${mb(p.bytes)}`).join(", ")}`,
  );
  return 0;
}
