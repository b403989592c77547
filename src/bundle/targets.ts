/** The Linux targets a bundle can be built for, and how each one is named by npm, Deno's npm packages and ELF. */
export const TARGETS = {
  "x86_64-unknown-linux-gnu": { npmCpu: "x64", denoPackage: "@deno/linux-x64-glibc", elfMachine: 62 },
  "aarch64-unknown-linux-gnu": { npmCpu: "arm64", denoPackage: "@deno/linux-arm64-glibc", elfMachine: 183 },
} as const;

export type TargetName = keyof typeof TARGETS;
export type Target = (typeof TARGETS)[TargetName] & { name: TargetName };

export const TARGET_NAMES = Object.keys(TARGETS) as TargetName[];

export function target(name: TargetName): Target {
  return { name, ...TARGETS[name] };
}

/** The target of the machine running this code, the default for `deno task bundle`. */
export function hostTarget(): Target {
  const name = TARGET_NAMES.find((n) => n.startsWith(`${Deno.build.arch}-`) && Deno.build.os === "linux");
  if (!name) throw new Error(`No bundle target for ${Deno.build.target}; pass --target`);
  return target(name);
}
