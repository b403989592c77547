import { join } from "node:path";

/** Another process (or another server in this one) holds the data dir. */
export class DataDirInUseError extends Error {}

export interface DataDirLock {
  release(): void;
}

/**
 * Takes an exclusive advisory lock on `<dataDir>/.lock` for a server's lifetime. Two servers on one data dir
 * would each drop the other's staging areas when they start and interleave job records; the second one is
 * refused instead. The operating system releases the lock when the holder dies, so a kill -9 leaves nothing to
 * clean up.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  await Deno.mkdir(dataDir, { recursive: true });
  const path = join(dataDir, ".lock");
  const file = await Deno.open(path, { create: true, write: true });
  let locked = false;
  try {
    locked = await file.tryLock(true);
  } finally {
    if (!locked) file.close();
  }
  if (!locked) {
    throw new DataDirInUseError(
      `data dir ${dataDir} is in use by another Kestrel server (${path} is locked): stop it or pass another --data-dir`,
    );
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      file.close();
    },
  };
}
