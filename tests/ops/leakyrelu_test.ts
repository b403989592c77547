import { planLeakyRelu } from "../../src/ops/activation.ts";
import { leakyRelu } from "../../src/reference/ops/activations.ts";
import { unaryTests } from "./_unary.ts";

/** YOLOv5's LeakyReLU slope in its older activation variants. */
const ALPHA = 0.1;
unaryTests("planLeakyRelu", (ctx, a) => planLeakyRelu(ctx, { ...a, alpha: ALPHA }), leakyRelu(ALPHA));
