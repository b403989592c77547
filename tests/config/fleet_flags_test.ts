/** The fleet flags of `deno task start`: defaults without --nats, and clear refusals of bad values. */
import assert from "node:assert/strict";
import { parseServerArgs } from "../../src/config/server.ts";

Deno.test("fleet flags: parsed with their defaults; none means no fleet", () => {
  const alone = parseServerArgs([]);
  assert.equal(alone.nats, undefined);
  assert.equal(alone.fleet, "kestrel");
  assert.equal(alone.jobs, "auto");
  const node = parseServerArgs([
    ...["--nats", "nats://10.0.0.5:4222", "--nats-creds", "box.creds", "--nats-ca", "ca.pem"],
    ...["--node", "box-1", "--fleet", "shop-7", "--jobs", "off"],
  ]);
  assert.deepEqual(
    [node.nats, node.natsCreds, node.natsCa, node.node, node.fleet, node.jobs],
    ["nats://10.0.0.5:4222", "box.creds", "ca.pem", "box-1", "shop-7", "off"],
  );
});

Deno.test("fleet flags: a bad URL, node or fleet name or jobs mode is refused naming the flag", () => {
  for (
    const [args, flag] of [
      [["--nats", "http://10.0.0.5:4222"], "nats"],
      [["--node", "box 1"], "node"],
      [["--fleet", "a.b"], "fleet"],
      [["--jobs", "sometimes"], "jobs"],
    ] as const
  ) {
    assert.throws(
      () => parseServerArgs([...args]),
      (err: Error) => err.message.includes(`→ at ${flag}\n`),
      args.join(" "),
    );
  }
});
