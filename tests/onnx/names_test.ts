import assert from "node:assert/strict";
import { parsePythonNames } from "../../src/onnx/names.ts";

Deno.test("parsePythonNames() reads export.py's str(dict) with both quote styles and escapes", () => {
  assert.deepEqual(parsePythonNames("{0: 'person', 1: 'bicycle'}"), ["person", "bicycle"]);
  assert.deepEqual(parsePythonNames(`{1: "it's", 0: 'a\\'b', 2: 'tab\\there', 3: '\\\\', 4: 'caf\\xe9'}`), [
    "a'b",
    "it's",
    "tab\there",
    "\\",
    "café",
  ]);
  assert.deepEqual(parsePythonNames("{0: '\\u00fcber', 1: 'x',}"), ["über", "x"]);
  assert.deepEqual(parsePythonNames("  {}  "), []);
});

Deno.test("parsePythonNames() accepts a list literal", () => {
  assert.deepEqual(parsePythonNames("['cat', \"dog\"]"), ["cat", "dog"]);
});

Deno.test("parsePythonNames() rejects malformed literals and gaps without evaluating anything", () => {
  assert.throws(() => parsePythonNames("{0: 'a', 2: 'c'}"), /keys must be 0\.\.1, 1 is missing/);
  assert.throws(() => parsePythonNames("{0: 'a', 0: 'b'}"), /0 repeats/);
  assert.throws(() => parsePythonNames("{0: 'a'"), /expected ',' or '}'/);
  assert.throws(() => parsePythonNames("{0: 'a}"), /closing quote/);
  assert.throws(() => parsePythonNames("{0: __import__('os')}"), /quoted string at offset 4/);
  assert.throws(() => parsePythonNames("person, bicycle"), /expected '\{' or '\['/);
  assert.throws(() => parsePythonNames("{0: 'a'} extra"), /end of the literal/);
  assert.throws(() => parsePythonNames("{0: '\\q'}"), /known escape/);
});
