import { planSigmoid } from "../../src/ops/activation.ts";
import { sigmoid } from "../../src/reference/ops/activations.ts";
import { unaryTests } from "./_unary.ts";

unaryTests("planSigmoid", planSigmoid, sigmoid);
