// Debian's Chromium driven by playwright-core, with a fresh profile and no way off the loopback interface.
import { type BrowserContext, chromium } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why the dashboard test cannot run here (no Chromium at CHROMIUM), or null. */
export function browserMissing(): string | null {
  try {
    Deno.statSync(CHROMIUM);
    return null;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    return `no Chromium at ${CHROMIUM} (install Debian's chromium package to run it)`;
  }
}

export interface Browser {
  context: BrowserContext;
  /** Every request the pages tried to send anywhere but the server under test. */
  blocked: string[];
  close(): Promise<void>;
}

/** Launches Chromium; requests to origins other than `allowedOrigin` are aborted and recorded. */
export async function launchBrowser(allowedOrigin: string): Promise<Browser> {
  const profile = await Deno.makeTempDir({ prefix: "kestrel-chromium-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
  });
  const blocked: string[] = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${allowedOrigin}/`) || url.startsWith("data:") || url.startsWith("blob:")) {
      return route.continue();
    }
    blocked.push(url);
    return route.abort("blockedbyclient");
  });
  return {
    context,
    blocked,
    close: async () => {
      await context.close();
      await Deno.remove(profile, { recursive: true });
    },
  };
}
