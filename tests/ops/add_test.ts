import { planAdd } from "../../src/ops/binary.ts";
import { add } from "../../src/reference/ops/binary.ts";
import { binaryTests } from "./_binary.ts";

binaryTests("planAdd", planAdd, add);
