// Preloaded by `deno task test` (deno.json): puts every test of the run under the time limit of timeout.ts.
import { testDefinition, testTimeoutMs, withTimeout } from "./timeout.ts";

const register = Deno.test;
const ms = testTimeoutMs();
const limited = (...args: unknown[]) => register(withTimeout(testDefinition(args), ms));
Object.assign(limited, {
  ignore: (...args: unknown[]) => register({ ...withTimeout(testDefinition(args), ms), ignore: true }),
  only: (...args: unknown[]) => register({ ...withTimeout(testDefinition(args), ms), only: true }),
});
Object.defineProperty(Deno, "test", { value: limited });
