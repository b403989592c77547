import { planMul } from "../../src/ops/mul.ts";
import { mul } from "../../src/reference/ops/binary.ts";
import { binaryTests } from "./_binary.ts";

binaryTests("planMul", planMul, mul);
