import { planRelu } from "../../src/ops/activation.ts";
import { relu } from "../../src/reference/ops/activations.ts";
import { unaryTests } from "./_unary.ts";

unaryTests("planRelu", planRelu, relu);
