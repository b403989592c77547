/** Whether the build machine can reach the npm registry (bundles fetch the target's packages from it). */
export async function npmReachable(): Promise<boolean> {
  try {
    const { code } = await new Deno.Command("npm", {
      args: ["ping", "--silent"],
      stdout: "null",
      stderr: "null",
      signal: AbortSignal.timeout(30_000),
    }).output();
    return code === 0;
  } catch {
    return false;
  }
}

/** Whether this process may create network and mount namespaces (root, or unprivileged user namespaces). */
export async function unshareAllowed(): Promise<boolean> {
  try {
    const { code } = await new Deno.Command("unshare", {
      args: ["-mn", "true"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return code === 0;
  } catch {
    return false;
  }
}

export const IS_ROOT = Deno.uid() === 0;

/** Fails with `what` instead of hanging the suite when a build runs away. */
export async function withLimit<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}
