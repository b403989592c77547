/**
 * Reads the import specifiers of a TypeScript module without a compiler: comments are dropped and string,
 * template and regex literals are masked first, so an `import` inside a comment or a string is never mistaken
 * for a real one.
 */

export interface ImportRef {
  specifier: string;
  /** `import type`, `export type`, or every named binding marked `type` */
  typeOnly: boolean;
  dynamic: boolean;
  /** 1-based line of the specifier */
  line: number;
}

/** Characters after which a `/` starts a regex literal rather than a division. */
const REGEX_AFTER = new Set([..."(,=:[!&|?{};+-*%<>~^"]);
const REGEX_KEYWORDS = /\b(return|typeof|case|do|else|in|of|void|yield|await)$/;

/**
 * Masks the source: comments become spaces, every string (and substitution-free template) literal becomes
 * `"#n"` with its text stored at `literals[n]`, other templates and regexes become blanks. Newlines are kept so
 * line numbers survive.
 */
function mask(src: string): { code: string; literals: string[] } {
  const literals: string[] = [];
  let code = "";
  const braces: number[] = []; // brace depth at which each open template substitution resumes the template
  let depth = 0;
  let i = 0;
  const blank = (text: string) => text.replace(/[^\n]/g, " ");
  const prevSignificant = () => code.trimEnd();
  const readTemplate = () => {
    // i points just past a backtick or a closing `}` of a substitution
    const start = i;
    while (i < src.length && src[i] !== "`") {
      if (src[i] === "\\") i += 2;
      else if (src[i] === "$" && src[i + 1] === "{") {
        i += 2;
        braces.push(depth++);
        return { text: src.slice(start, i - 2), open: true };
      } else i++;
    }
    i++;
    return { text: src.slice(start, i - 1), open: false };
  };
  while (i < src.length) {
    const c = src[i];
    if (c === "/" && src[i + 1] === "/") {
      const end = src.indexOf("\n", i);
      i = end < 0 ? src.length : end;
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? src.length : end + 2;
      code += blank(src.slice(i, stop));
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== "\n") j += src[j] === "\\" ? 2 : 1;
      literals.push(src.slice(i + 1, j));
      code += `"#${literals.length - 1}"`;
      i = j + 1;
    } else if (c === "`") {
      i++;
      const part = readTemplate();
      if (part.open) code += "`" + blank(part.text) + "${";
      else {
        literals.push(part.text);
        code += `"#${literals.length - 1}"`;
      }
    } else if (c === "}" && braces.length && braces[braces.length - 1] === depth - 1) {
      braces.pop();
      depth--;
      i++;
      const part = readTemplate();
      code += "}" + blank(part.text) + (part.open ? "${" : "`");
    } else if (c === "/") {
      const before = prevSignificant();
      if (before === "" || REGEX_AFTER.has(before[before.length - 1]) || REGEX_KEYWORDS.test(before)) {
        let j = i + 1, inClass = false;
        while (j < src.length && src[j] !== "\n" && (inClass || src[j] !== "/")) {
          if (src[j] === "\\") j++;
          else if (src[j] === "[") inClass = true;
          else if (src[j] === "]") inClass = false;
          j++;
        }
        code += blank(src.slice(i, j + 1));
        i = j + 1;
      } else {
        code += c;
        i++;
      }
    } else {
      if (c === "{") depth++;
      else if (c === "}") depth--;
      code += c;
      i++;
    }
  }
  return { code, literals };
}

const STATIC = /(?<![\w$.])(import|export)(\s+type(?=[\s{*]))?\s+(?:([\w$\s{},*]*?)\s*from\s*)?"#(\d+)"/g;
const DYNAMIC = /(?<![\w$.])(typeof\s+)?import\s*\(\s*"#(\d+)"/g;

/** Every import and re-export specifier of a module's source, in source order. */
export function parseImports(src: string): ImportRef[] {
  const { code, literals } = mask(src);
  const lineAt = (index: number) => code.slice(0, index).split("\n").length;
  const refs: { at: number; ref: ImportRef }[] = [];
  for (const m of code.matchAll(STATIC)) {
    const [, , typeKeyword, clause = "", n] = m;
    if (m[1] === "export" && clause === "") continue; // `export "x"` is not a statement
    const names = /^\{([^}]*)\}$/.exec(clause.trim())?.[1].split(",").map((s) => s.trim()).filter(Boolean);
    const allTyped = names !== undefined && names.length > 0 && names.every((s) => /^type\s/.test(s));
    const at = m.index! + m[0].lastIndexOf('"#');
    refs.push({
      at,
      ref: { specifier: literals[+n], typeOnly: !!typeKeyword || allTyped, dynamic: false, line: lineAt(at) },
    });
  }
  for (const m of code.matchAll(DYNAMIC)) {
    const at = m.index! + m[0].lastIndexOf('"#');
    refs.push({ at, ref: { specifier: literals[+m[2]], typeOnly: !!m[1], dynamic: true, line: lineAt(at) } });
  }
  return refs.sort((a, b) => a.at - b.at).map((r) => r.ref);
}
