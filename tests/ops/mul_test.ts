import { planMul } from "../../src/ops/binary.ts";
import { mul } from "../../src/reference/ops/binary.ts";
import { binaryTests } from "./_binary.ts";

binaryTests("planMul", planMul, mul);
