// Seeded mutation of request bodies for the route fuzz tests: the same seed gives the same bodies, so a
// failure names a seed that reproduces it.

export const pick = <T>(rand: () => number, items: readonly T[]): T =>
  items[Math.floor(rand() * items.length)];
const int = (rand: () => number, n: number) => Math.floor(rand() * n);

/** Bytes that tend to matter to parsers: delimiters, quotes, NUL, high bytes, digits and signs. */
const INTERESTING = [
  0,
  0x0a,
  0x0d,
  0x22,
  0x2c,
  0x2d,
  0x30,
  0x39,
  0x3a,
  0x3b,
  0x3d,
  0x5b,
  0x5d,
  0x7b,
  0x7d,
  0x7f,
  0xff,
];

/** 1 to 4 edits of `input`: flip, overwrite, insert, delete, truncate, duplicate a span. */
export function mutateBytes(rand: () => number, input: Uint8Array): Uint8Array<ArrayBuffer> {
  let out = Uint8Array.from(input);
  const edits = 1 + int(rand, 4);
  for (let e = 0; e < edits; e++) {
    const at = int(rand, out.length + 1);
    switch (int(rand, 6)) {
      case 0:
        if (at < out.length) out[at] ^= 1 << int(rand, 8);
        break;
      case 1:
        if (at < out.length) out[at] = rand() < 0.5 ? pick(rand, INTERESTING) : int(rand, 256);
        break;
      case 2: {
        const extra = Uint8Array.from({ length: 1 + int(rand, 8) }, () => pick(rand, INTERESTING));
        out = concat(out.subarray(0, at), extra, out.subarray(at));
        break;
      }
      case 3:
        out = concat(out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + int(rand, 16))));
        break;
      case 4:
        out = out.slice(0, at);
        break;
      default: {
        const end = Math.min(out.length, at + 1 + int(rand, 64));
        out = concat(out.subarray(0, end), out.subarray(at, end), out.subarray(end));
      }
    }
  }
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A random JSON value: nesting, huge and odd numbers, long and odd strings, the types a schema does not expect. */
export function randomJson(rand: () => number, depth = 0): unknown {
  const kind = int(rand, depth > 3 ? 4 : 7);
  switch (kind) {
    case 0:
      return pick(rand, [0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, 1e-300, 7, 100000, 0.5]);
    case 1:
      return pick(rand, [
        "",
        "a",
        "../../etc/passwd",
        "\u0000",
        "data:;base64,",
        "%%%",
        "x".repeat(1000),
        "é",
      ]);
    case 2:
      return pick(rand, [true, false, null]);
    case 3:
      return pick(rand, [[], {}, [[0, 0.5, 0.5, 0.1, 0.1]], [[-1, 2, 2, 0, 0]]]);
    case 4:
      return Array.from({ length: int(rand, 4) }, () => randomJson(rand, depth + 1));
    default: {
      const keys = [
        "image",
        "version",
        "config",
        "images",
        "name",
        "data",
        "labels",
        "epochs",
        "imgsz",
        "__proto__",
      ];
      return Object.fromEntries(
        Array.from({ length: int(rand, 4) }, () => [pick(rand, keys), randomJson(rand, depth + 1)]),
      );
    }
  }
}

/** Replaces one field somewhere in `value` (an object or array tree) with a random JSON value. */
export function mutateJson(rand: () => number, value: unknown): unknown {
  if (value === null || typeof value !== "object" || rand() < 0.3) return randomJson(rand);
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? [...value] : { ...value };
  const keys = Object.keys(copy);
  if (keys.length === 0) return randomJson(rand);
  const key = pick(rand, keys);
  if (rand() < 0.15) {
    if (Array.isArray(copy)) copy.splice(Number(key), 1);
    else delete copy[key];
    return copy;
  }
  (copy as Record<string, unknown>)[key] = mutateJson(rand, (copy as Record<string, unknown>)[key]);
  return copy;
}
