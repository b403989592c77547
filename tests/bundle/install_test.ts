import assert from "node:assert/strict";
import { join } from "node:path";
import { writeDeployFiles } from "../../src/bundle/build.ts";
import { target, TARGET_NAMES } from "../../src/bundle/targets.ts";
import { writeFakeElf } from "./_elf.ts";
import { IS_ROOT } from "./_preconditions.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const HAS_USERADD = await new Deno.Command("sh", { args: ["-c", "command -v useradd"], stdout: "null" })
  .output()
  .then((o) => o.success, () => false);
if (!IS_ROOT || !HAS_USERADD) console.warn("install.sh test skipped: it needs root and useradd");
/** install.sh copies a bundle and writes a few files: seconds, even on a loaded machine. */
const INSTALL_LIMIT_MS = 60_000;

/** A bundle of `version` as install.sh sees it: the deploy files, a stand-in Deno that runs and a stand-in app. */
async function fakeBundle(parent: string, version: string): Promise<string> {
  const dir = join(parent, `kestrel-${version}`);
  await writeDeployFiles(ROOT, dir, version);
  await Deno.writeTextFile(join(dir, "bin", "deno"), '#!/bin/sh\necho "deno 0.0.0"\n', { mode: 0o755 });
  await Deno.mkdir(join(dir, "app"));
  await Deno.writeTextFile(join(dir, "app", "main.ts"), `// app ${version}\n`);
  return dir;
}

/** A prefix with the /etc files useradd needs. */
async function fakeRoot(work: string): Promise<string> {
  const root = join(work, "root");
  await Deno.mkdir(join(root, "etc"), { recursive: true });
  for (const file of ["passwd", "shadow", "gshadow"]) await Deno.writeTextFile(join(root, "etc", file), "");
  await Deno.writeTextFile(join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  await Deno.writeTextFile(join(root, "etc", "group"), "root:x:0:\nrender:x:990:\n");
  return root;
}

async function install(bundle: string, root: string, ...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(join(bundle, "install.sh"), {
    args,
    env: { KESTREL_ROOT: root, KESTREL_NO_SYSTEMCTL: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(INSTALL_LIMIT_MS),
  }).output();
  const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, out);
  return out;
}

/** Every path under `root` with its type, mode, owner and content (or link target): what a rerun must not change. */
async function snapshot(root: string): Promise<string[]> {
  const lines: string[] = [];
  async function visit(dir: string) {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      const info = await Deno.lstat(path);
      const what = entry.isSymlink
        ? `-> ${await Deno.readLink(path)}`
        : entry.isFile
        ? await Deno.readTextFile(path)
        : "dir";
      lines.push(`${path.slice(root.length)} ${info.mode?.toString(8)} ${info.uid}:${info.gid} ${what}`);
      if (entry.isDirectory) await visit(path);
    }
  }
  await visit(root);
  return lines.sort();
}

Deno.test({
  name:
    "install.sh installs into a prefix, changes nothing when rerun, upgrades and rolls back by switching links",
  ignore: !IS_ROOT || !HAS_USERADD,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "kestrel-install-" });
    const root = await fakeRoot(work);
    const v1 = await fakeBundle(work, "1.0.0");
    const v2 = await fakeBundle(work, "1.1.0");
    const opt = join(root, "opt/kestrel");

    const first = await install(v1, root);
    assert.match(first, /skipped 'systemctl enable kestrel.service'/);
    const passwd = await Deno.readTextFile(join(root, "etc/passwd"));
    const [, , uid, gid, , home, shell] = /^kestrel:.*$/m.exec(passwd)![0].split(":");
    assert.deepEqual([home, shell], ["/var/lib/kestrel", "/usr/sbin/nologin"]);
    assert.match(await Deno.readTextFile(join(root, "etc/group")), /^render:x:990:kestrel$/m);
    assert.equal(await Deno.readLink(join(opt, "current")), "1.0.0");
    assert.equal(await Deno.readTextFile(join(opt, "current/app/main.ts")), "// app 1.0.0\n");
    const data = await Deno.stat(join(root, "var/lib/kestrel"));
    assert.deepEqual([data.uid, data.gid, data.mode! & 0o777], [Number(uid), Number(gid), 0o750]);
    const envFile = join(root, "etc/kestrel/kestrel.env");
    const env = await Deno.stat(envFile);
    assert.deepEqual([env.uid, env.gid, env.mode! & 0o777], [0, Number(gid), 0o640]);
    const settings = await Deno.readTextFile(envFile);
    assert.match(
      settings,
      /^KESTREL_API_KEY=[0-9a-f]{48}$/m,
      "a generated key, not the template's placeholder",
    );
    assert.equal(
      await Deno.readTextFile(join(root, "etc/systemd/system/kestrel.service")),
      await Deno.readTextFile(join(ROOT, "deploy/kestrel.service")),
    );

    const before = await snapshot(root);
    await install(v1, root);
    assert.deepEqual(await snapshot(root), before, "a second run changed something");

    await Deno.writeTextFile(envFile, settings.replace("KESTREL_PORT=8000", "KESTREL_PORT=9000"));
    const upgrade = await install(v2, root);
    assert.match(upgrade, /current -> 1.1.0 \(was 1.0.0\)/);
    assert.match(upgrade, /skipped 'systemctl restart kestrel.service'/);
    assert.equal(await Deno.readLink(join(opt, "current")), "1.1.0");
    assert.equal(await Deno.readLink(join(opt, "previous")), "1.0.0");
    assert.equal(await Deno.readTextFile(join(opt, "current/app/main.ts")), "// app 1.1.0\n");
    assert.match(await Deno.readTextFile(envFile), /^KESTREL_PORT=9000$/m, "an upgrade keeps the settings");

    await install(join(opt, "current"), root, "--rollback");
    assert.equal(await Deno.readLink(join(opt, "current")), "1.0.0");
    assert.equal(await Deno.readLink(join(opt, "previous")), "1.1.0");
    assert.equal(await Deno.readTextFile(join(opt, "current/app/main.ts")), "// app 1.0.0\n");
    await Deno.remove(work, { recursive: true });
  },
});

Deno.test({
  name: "install.sh refuses a bundle whose Deno is for another CPU, before changing anything",
  ignore: !IS_ROOT || !HAS_USERADD,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "kestrel-install-" });
    const root = await fakeRoot(work);
    const bundle = await fakeBundle(work, "1.0.0");
    const other = TARGET_NAMES.map(target).find((t) => !t.name.startsWith(`${Deno.build.arch}-`))!;
    await writeFakeElf(join(bundle, "bin", "deno"), other.elfMachine);
    const before = await snapshot(root);
    const { code, stderr } = await new Deno.Command(join(bundle, "install.sh"), {
      env: { KESTREL_ROOT: root, KESTREL_NO_SYSTEMCTL: "1" },
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(INSTALL_LIMIT_MS),
    }).output();
    assert.equal(code, 1);
    assert.match(
      new TextDecoder().decode(stderr),
      /bin\/deno does not run on this \S+ machine \(a bundle for another CPU\?\); nothing was changed/,
    );
    assert.deepEqual(await snapshot(root), before, "no user, no /opt/kestrel, no settings, no unit");
    await Deno.remove(work, { recursive: true });
  },
});
