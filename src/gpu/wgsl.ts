/** WGSL sources live in the repository's wgsl/ folder; this reads them once per process. */
const root = new URL("../../wgsl/", import.meta.url);
const cache = new Map<string, string>();

/**
 * The storage type of a kernel's GEMM operands. WGSL has no type parameters, so a kernel that works in either
 * precision is ONE source written against `Elem` (and `toElem4` for stores), and the loader puts the matching
 * prelude in front of it ({@link elemPrelude}); arithmetic stays f32 (operands are widened with vec4f(...)).
 */
export type ElemType = "f32" | "f16";

/** Source of `wgsl/<path>` (e.g. "optim/adam.wgsl"). */
export function loadWgsl(path: string): string {
  let code = cache.get(path);
  if (code === undefined) {
    code = withIncludes(Deno.readTextFileSync(new URL(path, root)));
    cache.set(path, code);
  }
  return code;
}

/** A line `// #include <path>` in a WGSL source: replaced by `wgsl/<path>`'s text, so kernels of several
 * files share helpers (WGSL has no imports). */
const INCLUDE = /^\/\/ #include (\S+)$/gm;

/** `code` with each include line replaced by the source it names (itself with its includes). */
function withIncludes(code: string): string {
  return code.replace(INCLUDE, (_, path: string) => loadWgsl(path));
}

/**
 * What {@link ElemType} a module is compiled for: `alias Elem` and `toElem4` (an f32 vec4 stored as Elem). f16
 * needs the shader-f16 feature (`enable f16;` must open the module). An f32 value too large for f16 is
 * indeterminate when converted in WGSL; `toElem4` makes it, and any inf or NaN, +inf, which is what IEEE
 * rounding gives and what amp's overflow check (wgsl/optim/unscale.wgsl) then catches downstream.
 */
export function elemPrelude(elem: ElemType): string {
  if (elem === "f32") return "alias Elem = f32;\nfn toElem4(v: vec4f) -> vec4<Elem> { return v; }\n";
  return `enable f16;
alias Elem = f16;
fn toElem4(v: vec4f) -> vec4<Elem> {
  // 65520: halfway between f16's largest finite value (65504) and the next step; from there IEEE rounds to inf.
  let big = abs(v) >= vec4f(65520.0);
  let nonfinite = (bitcast<vec4u>(v) & vec4u(0x7f800000u)) == vec4u(0x7f800000u);
  // f16's inf bits (0x7c00) unpacked; "& 0u" of a runtime value keeps this from being a constant (an infinite
  // constant is a shader-creation error).
  let inf = vec4<f16>(vec4f(unpack2x16float(0x7c00u | (bitcast<u32>(v.x) & 0u)).x));
  return select(vec4<f16>(clamp(v, vec4f(-65504.0), vec4f(65504.0))), inf, big | nonfinite);
}
`;
}

/**
 * What one invocation of a streaming elementwise kernel handles: one f32, or a vec4f where every view it touches
 * is 4-aligned (a quarter of the per-lane loads and stores, which bound lavapipe there). Like {@link ElemType},
 * a kernel that works either way is ONE source, written against `Lane` and `LANE_WIDTH` ({@link lanePrelude}).
 */
export type LaneType = "f32" | "vec4f";

/**
 * What {@link LaneType} a module is compiled for: `alias Lane` (the element type of its `array<Lane>` bindings)
 * and `LANE_WIDTH`, the floats in one Lane (offsets and counts stay in floats; divide them by LANE_WIDTH).
 */
export function lanePrelude(lane: LaneType): string {
  return lane === "f32"
    ? "alias Lane = f32;\nconst LANE_WIDTH = 1u;\n"
    : "alias Lane = vec4f;\nconst LANE_WIDTH = 4u;\n";
}
