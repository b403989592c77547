/**
 * Parse the `names` metadata ultralytics export.py writes: `str(dict)` of a Python dict, e.g.
 * `{0: 'person', 1: "it's"}` (a list literal `['a', 'b']` is accepted too). Only int keys and string literals
 * are understood; nothing is evaluated.
 *
 * @returns the names in class order; throws a RangeError naming the offset when the literal is malformed or the
 *   keys are not exactly 0..n-1.
 */
export function parsePythonNames(text: string): string[] {
  const p = new LiteralReader(text);
  const byIndex = new Map<number, string>();
  const open = p.next();
  const close = open === "{" ? "}" : open === "[" ? "]" : p.fail("'{' or '['");
  p.skipSpace();
  if (p.peek() === close) p.next();
  else {
    for (let i = 0;; i++) {
      const key = open === "{" ? p.readInt() : i;
      if (open === "{") p.expect(":");
      if (byIndex.has(key)) p.fail(`a new key (${key} repeats)`);
      byIndex.set(key, p.readString());
      const sep = p.next();
      if (sep === close) break;
      if (sep !== ",") p.fail(`',' or '${close}'`, -1);
      p.skipSpace();
      if (p.peek() === close) { // Python allows a trailing comma
        p.next();
        break;
      }
    }
  }
  p.skipSpace();
  if (!p.done()) p.fail("the end of the literal");
  const names = Array.from({ length: byIndex.size }, (_, i) => byIndex.get(i));
  const missing = names.findIndex((n) => n === undefined);
  if (missing >= 0) {
    throw new RangeError(
      `Class names ${abbrev(text)}: keys must be 0..${names.length - 1}, ${missing} is missing`,
    );
  }
  return names as string[];
}

const ESCAPES: Record<string, string> = {
  n: "\n",
  t: "\t",
  r: "\r",
  "\\": "\\",
  "'": "'",
  '"': '"',
  "0": "\0",
};

class LiteralReader {
  private pos = 0;
  constructor(private readonly text: string) {}

  done(): boolean {
    return this.pos >= this.text.length;
  }

  skipSpace(): void {
    while (/\s/.test(this.text[this.pos] ?? "")) this.pos++;
  }

  peek(): string {
    return this.text[this.pos] ?? "";
  }

  /** The next non-space character, consumed. */
  next(): string {
    this.skipSpace();
    return this.text[this.pos++] ?? "";
  }

  expect(ch: string): void {
    if (this.next() !== ch) this.fail(`'${ch}'`, -1);
  }

  readInt(): number {
    this.skipSpace();
    const m = /^\d+/.exec(this.text.slice(this.pos));
    if (!m) this.fail("an integer key");
    this.pos += m[0].length;
    return Number(m[0]);
  }

  readString(): string {
    const quote = this.next();
    if (quote !== "'" && quote !== '"') this.fail("a quoted string", -1);
    let out = "";
    for (;;) {
      const ch = this.text[this.pos++];
      if (ch === undefined) this.fail("a closing quote");
      if (ch === quote) return out;
      if (ch !== "\\") {
        out += ch;
        continue;
      }
      const esc = this.text[this.pos++] ?? "";
      const hex = esc === "x" ? 2 : esc === "u" ? 4 : esc === "U" ? 8 : 0;
      if (hex > 0) {
        const digits = this.text.slice(this.pos, this.pos + hex);
        if (!new RegExp(`^[0-9a-fA-F]{${hex}}$`).test(digits)) this.fail(`${hex} hex digits after \\${esc}`);
        out += String.fromCodePoint(parseInt(digits, 16));
        this.pos += hex;
      } else if (esc in ESCAPES) out += ESCAPES[esc];
      else this.fail("a known escape", -1);
    }
  }

  fail(expected: string, back = 0): never {
    const at = this.pos + back;
    throw new RangeError(`Class names ${abbrev(this.text)}: expected ${expected} at offset ${at}`);
  }
}

function abbrev(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}
