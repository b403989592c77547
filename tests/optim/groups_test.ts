import assert from "node:assert/strict";
import {
  describeGroups,
  groupOfRole,
  groupSizes,
  groupTags,
  type LayoutEntry,
  layoutLength,
  type ParamRole,
  pyFloat,
  SKIP_TAG,
  validateLayout,
} from "../../src/optim/groups.ts";

function layoutOf(roles: ParamRole[], frozen: (k: number) => boolean = () => false): LayoutEntry[] {
  let offset = 0;
  return roles.map((role, k) => {
    const size = 3 + k;
    const e = {
      name: `t${k}`,
      shape: [size],
      offset,
      size,
      role,
      group: groupOfRole(role),
      frozen: frozen(k),
    };
    offset += Math.ceil(size / 4) * 4;
    return e;
  });
}

Deno.test("describeGroups logs like train.py: yolov5s gives 57 BN weights, 60 weights, 60 biases", () => {
  const roles: ParamRole[] = [
    ...Array(57).fill("norm_weight"),
    ...Array(60).fill("weight"),
    ...Array(60).fill("bias"),
  ];
  assert.equal(
    describeGroups("SGD", 0.01, 0.0005, layoutOf(roles)),
    "optimizer: SGD(lr=0.01) with parameter groups 57 weight(decay=0.0), 60 weight(decay=0.0005), 60 bias",
  );
  assert.equal(
    describeGroups("AdamW", 0.001, 0.0005625000000000001, layoutOf(["weight", "bias"])),
    "optimizer: AdamW(lr=0.001) with parameter groups 0 weight(decay=0.0), 1 weight(decay=0.0005625000000000001), 1 bias",
  );
});

Deno.test("pyFloat prints floats like Python's repr", () => {
  assert.deepEqual(
    [0, 1, 0.01, 5e-5, 0.0001, 1.5e-7, 1e16, 123.25].map(pyFloat),
    ["0.0", "1.0", "0.01", "5e-05", "0.0001", "1.5e-07", "1e+16", "123.25"],
  );
});

Deno.test("groupSizes counts frozen tensors in their groups but not their elements", () => {
  const layout = layoutOf(["weight", "bias", "norm_weight", "weight"], (k) => k === 3);
  assert.deepEqual(groupSizes(layout), { tensors: [1, 2, 1], elements: [4, 3, 5], frozenTensors: 1 });
});

Deno.test("groupTags packs 2-bit group tags per vec4 and skips frozen tensors and gaps", () => {
  const layout = layoutOf(["weight", "bias", "norm_weight", "weight"], (k) => k === 3);
  layout[2].offset += 4; // a gap of one vec4 before tensor 2
  layout[3].offset += 4;
  const n4 = layoutLength(layout) / 4;
  const tags = groupTags(layout);
  const tag = (v: number) => (tags[v >> 4] >>> ((v % 16) * 2)) & 3;
  assert.deepEqual(Array.from({ length: n4 }, (_, v) => tag(v)), [1, 0, SKIP_TAG, 2, 2, SKIP_TAG, SKIP_TAG]);
});

Deno.test("validateLayout names the offending tensor", () => {
  const misaligned = layoutOf(["weight", "bias"]);
  misaligned[1].offset = 2;
  assert.throws(() => validateLayout(misaligned), /t1 offset 2 is not a multiple of 4/);
  const wrongGroup = layoutOf(["weight"]);
  wrongGroup[0].group = 0;
  assert.throws(() => validateLayout(wrongGroup), /t0 role weight expects group 1/);
  const overlap = layoutOf(["weight", "bias"]);
  overlap[1].offset = 0;
  assert.throws(() => validateLayout(overlap), /overlaps/);
});
