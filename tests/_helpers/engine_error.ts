/**
 * Errors the JavaScript engine throws on a parser's bug (reading past a buffer, a property of undefined,
 * runaway recursion or allocation), as opposed to the parser's own refusals. A fuzz case that ends in one of
 * these found a bug even when the caller would have wrapped it into a 4xx.
 */
const ENGINE_ERROR =
  /Cannot read propert|Cannot set propert|is not a function|is not iterable|outside the bounds|out of bounds|Offset is outside|Maximum call stack|Invalid array length|Invalid typed array length|allocation failed|out of memory/i;

export function isEngineError(err: unknown): boolean {
  return !(err instanceof Error) || ENGINE_ERROR.test(err.message);
}
