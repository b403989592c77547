// Every test gets a time limit. Deno 2.9's test runner has no per-test timeout (a hung test waits forever), so
// `deno task test` preloads tests/_helpers/test_timeouts.ts (`--preload`), which wraps Deno.test with
// withTimeout(): each test body races a timer and the test fails, naming itself and the limit, when the timer
// wins. The limit is KESTREL_TEST_TIMEOUT_S seconds (default 600: the slowest test, the golden fine-tune on a
// software GPU under load, takes a few minutes). A side effect: the runner records where Deno.test was called, so
// its summary lists test_timeouts.ts as every test's location; the "running N tests from <file>" headers and the
// error stacks still point to the test. Running one file by hand (`deno test -A tests/x_test.ts`) has no limit
// unless given `--preload tests/_helpers/test_timeouts.ts`.

export const TEST_TIMEOUT_ENV = "KESTREL_TEST_TIMEOUT_S";
const DEFAULT_TIMEOUT_S = 600;

/** The per-test limit in milliseconds, from KESTREL_TEST_TIMEOUT_S. */
export function testTimeoutMs(): number {
  const text = Deno.env.get(TEST_TIMEOUT_ENV);
  const seconds = text === undefined ? DEFAULT_TIMEOUT_S : Number(text);
  if (!(seconds > 0)) {
    throw new RangeError(`${TEST_TIMEOUT_ENV} must be a positive number of seconds, got '${text}'`);
  }
  return seconds * 1000;
}

type TestFn = (t: Deno.TestContext) => void | Promise<void>;

/** Deno.test's overloads ((def), (name, fn), (fn), (name, options, fn), (options, fn)) as one definition. */
export function testDefinition(args: unknown[]): Deno.TestDefinition {
  const [a, b, c] = args;
  if (typeof a === "string") {
    return typeof b === "function"
      ? { name: a, fn: b as TestFn }
      : { ...(b as object), name: a, fn: c as TestFn };
  }
  if (typeof a === "function") return { name: a.name, fn: a as TestFn };
  if (typeof b === "function") return { name: b.name, ...(a as object), fn: b as TestFn };
  return a as Deno.TestDefinition;
}

/** The same test, failing with a clear error when its body runs past `ms`. */
export function withTimeout(def: Deno.TestDefinition, ms: number): Deno.TestDefinition {
  const body = def.fn;
  return {
    ...def,
    fn: async (t) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const limit = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`'${def.name}' timed out after ${ms / 1000} s (${TEST_TIMEOUT_ENV})`)),
          ms,
        );
      });
      try {
        await Promise.race([body(t), limit]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
