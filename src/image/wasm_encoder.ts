/**
 * A minimal WebAssembly binary encoder: enough to write a few small kernels as instruction lists in TypeScript
 * and assemble them at load time, so the repository needs no wasm toolchain and ships no opaque binary. It knows
 * only the instructions those kernels use (core spec 2.0 with fixed-width SIMD); V8 validates the result.
 */

/** A value type of a parameter or local. */
export const I32 = 0x7f;
export const V128 = 0x7b;
type ValueType = typeof I32 | typeof V128;

/** One instruction, already encoded; a function body is a list of them. */
export type Instr = number[];

function u32(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function s32(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const vec = (items: number[][]): number[] => [...u32(items.length), ...items.flat()];
const name = (s: string): number[] => vec([...new TextEncoder().encode(s)].map((b) => [b]));
const memarg = (align: number, offset: number) => [...u32(align), ...u32(offset)];
const simd = (op: number, ...imm: number[]): Instr => [0xfd, ...u32(op), ...imm];

/** The instructions the kernels use; memory offsets are static byte offsets added to the address operand. */
export const op = {
  localGet: (i: number): Instr => [0x20, ...u32(i)],
  localSet: (i: number): Instr => [0x21, ...u32(i)],
  localTee: (i: number): Instr => [0x22, ...u32(i)],
  i32Const: (n: number): Instr => [0x41, ...s32(n)],
  i32Load: (offset = 0): Instr => [0x28, ...memarg(2, offset)],
  f32Store: (offset = 0): Instr => [0x38, ...memarg(2, offset)],
  i32Add: [0x6a] as Instr,
  i32Mul: [0x6c] as Instr,
  i32ShrS: [0x75] as Instr,
  i32LtS: [0x48] as Instr,
  i32LeS: [0x4c] as Instr,
  f32ConvertI32S: [0xb2] as Instr,
  f32Div: [0x95] as Instr,
  f32Const: (x: number): Instr => [0x43, ...new Uint8Array(new Float32Array([x]).buffer)],
  /** `block`/`loop` with no result; close each with `end`. A branch to a loop repeats it, to a block leaves it. */
  block: [0x02, 0x40] as Instr,
  loop: [0x03, 0x40] as Instr,
  end: [0x0b] as Instr,
  brIf: (depth: number): Instr => [0x0d, ...u32(depth)],
  v128Load: (offset = 0): Instr => simd(0x00, ...memarg(4, offset)),
  v128Store: (offset = 0): Instr => simd(0x0b, ...memarg(4, offset)),
  /** Loads 4 bytes into lane bytes 0..3 and zeroes bytes 4..15. */
  v128Load32Zero: (offset = 0): Instr => simd(0x5c, ...memarg(2, offset)),
  /** Picks 16 bytes by index from two vectors (0..15 the first, 16..31 the second). */
  i8x16Shuffle: (lanes: number[]): Instr => simd(0x0d, ...lanes),
  i32x4Splat: simd(0x11),
  f32x4Splat: simd(0x13),
  i32x4ShrS: simd(0xac),
  i32x4Add: simd(0xae),
  i32x4Mul: simd(0xb5),
  /** Lane i = a[2i]·b[2i] + a[2i+1]·b[2i+1] over signed 16-bit lanes, as 32-bit lanes. */
  i32x4DotI16x8S: simd(0xba),
  f32x4Div: simd(0xe7),
  f32x4ConvertI32x4S: simd(0xfa),
};

/** One exported function: its i32 parameters, extra locals by type, and body (without the final `end`). */
export interface WasmFunction {
  name: string;
  params: number;
  locals: ValueType[];
  body: Instr[];
}

function section(id: number, contents: number[]): number[] {
  return [id, ...u32(contents.length), ...contents];
}

/**
 * A module of functions taking i32 parameters and returning nothing, over one memory imported as `env.memory`
 * (the caller owns it, and grows it as its inputs need).
 */
export function assembleModule(functions: WasmFunction[]): Uint8Array<ArrayBuffer> {
  const types = vec(functions.map((f) => [0x60, ...vec(Array(f.params).fill([I32])), ...vec([])]));
  const imports = vec([[...name("env"), ...name("memory"), 0x02, 0x00, ...u32(1)]]);
  const funcs = vec(functions.map((_, i) => u32(i)));
  const exports = vec(functions.map((f, i) => [...name(f.name), 0x00, ...u32(i)]));
  const codes = vec(functions.map((f) => {
    const body = [...vec(f.locals.map((t) => [1, t])), ...f.body.flat(), ...op.end];
    return [...u32(body.length), ...body];
  }));
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, codes),
  ]);
}
