/**
 * Uniform struct layouts, declared once per WGSL struct with the struct's field names and scalar types, and the
 * packing of named values into its bytes. Every layout registers itself, so a test can hold each declaration
 * against the WGSL source it mirrors (tests/gpu/uniform_test.ts parses the structs): a field added, moved or
 * retyped on one side only fails there instead of feeding a kernel shifted words.
 * @module
 */

export type ScalarType = "u32" | "f32";

export interface UniformLayout<F extends string> {
  /** WGSL files (under wgsl/) that declare the struct, and its name there. */
  readonly files: readonly string[];
  readonly struct: string;
  /** Fields in declaration order, each one 4-byte scalar; array-of-struct fields flattened as `name[i].field`. */
  readonly fields: readonly (readonly [F, ScalarType])[];
  /** Bytes of the struct (fields x 4; WGSL uniform structs here are written in multiples of 16 bytes). */
  readonly byteLength: number;
  /** The struct's bytes with `values` by field name (fields left out are 0): little-endian u32 or f32. */
  pack(values: Partial<Record<F, number>>, label?: string): ArrayBuffer;
}

const registry: UniformLayout<string>[] = [];

/** Every layout declared so far (by the modules imported). */
export function uniformLayouts(): readonly UniformLayout<string>[] {
  return registry;
}

export function uniformLayout<const F extends string>(
  files: string | readonly string[],
  struct: string,
  fields: readonly (readonly [F, ScalarType])[],
): UniformLayout<F> {
  const index = new Map(fields.map(([name, type], i) => [name as string, { offset: 4 * i, type }]));
  const byteLength = 4 * fields.length;
  const layout: UniformLayout<F> = {
    files: typeof files === "string" ? [files] : files,
    struct,
    fields,
    byteLength,
    pack(values, label = struct) {
      const view = new DataView(new ArrayBuffer(byteLength));
      for (const [name, value] of Object.entries(values) as [string, number | undefined][]) {
        if (value === undefined) continue;
        const field = index.get(name);
        if (!field) throw new Error(`${label}: ${struct} has no field '${name}'`);
        if (field.type === "f32") {
          view.setFloat32(field.offset, value, true);
        } else {
          if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
            throw new Error(`${label}: ${struct}.${name} = ${value}, expected an unsigned 32-bit integer`);
          }
          view.setUint32(field.offset, value, true);
        }
      }
      return view.buffer;
    },
  };
  registry.push(layout);
  return layout;
}

/** All-u32 fields named `names` (most op Params structs are only offsets, strides and counts). */
export function u32Fields<const F extends string>(names: readonly F[]): (readonly [F, "u32"])[] {
  return names.map((n) => [n, "u32"] as const);
}
