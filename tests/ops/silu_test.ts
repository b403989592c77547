import { planSilu } from "../../src/ops/activation.ts";
import { silu } from "../../src/reference/ops/activations.ts";
import { unaryTests } from "./_unary.ts";

unaryTests("planSilu", planSilu, silu, true);
