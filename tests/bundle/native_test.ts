import assert from "node:assert/strict";
import { nativeKind } from "../../src/bundle/native.ts";
import { elfHead } from "./_elf.ts";

Deno.test("nativeKind reads e_machine in the header's byte order and names Mach-O and PE files", () => {
  assert.deepEqual(nativeKind(elfHead(62, true)), { kind: "elf", machine: 62 });
  assert.deepEqual(nativeKind(elfHead(183, false)), { kind: "elf", machine: 183 });
  assert.deepEqual(nativeKind(new Uint8Array([0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1])), { kind: "macho" });
  assert.deepEqual(nativeKind(new Uint8Array([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2])), { kind: "macho" });
  assert.deepEqual(
    nativeKind(new Uint8Array([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52])),
    { kind: "none" },
    "a Java class",
  );
  assert.deepEqual(nativeKind(new TextEncoder().encode("MZ\x90\x00")), { kind: "pe" });
  assert.deepEqual(nativeKind(new TextEncoder().encode("#!/bin/sh\n")), { kind: "none" });
  assert.deepEqual(
    nativeKind(elfHead(62, true).subarray(0, 10)),
    { kind: "none" },
    "too short to hold e_machine",
  );
});
