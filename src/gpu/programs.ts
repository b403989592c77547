import { elemPrelude, type ElemType, loadWgsl } from "./wgsl.ts";

/**
 * Compute pipelines keyed by (file, entry point, override constants, operand type): every distinct pipeline is
 * compiled once, at setup, and reused by every later dispatch. Shapes that vary per call travel as uniforms,
 * not as constants. `elem` picks the prelude a kernel written against `Elem` is compiled with (wgsl.ts).
 */
export class ProgramCache {
  #pipelines = new Map<string, GPUComputePipeline>();
  #modules = new Map<string, GPUShaderModule>();

  constructor(readonly device: GPUDevice) {}

  get(
    file: string,
    entryPoint: string,
    constants: Record<string, number> = {},
    elem: ElemType = "f32",
  ): GPUComputePipeline {
    const key = `${file}#${elem}#${entryPoint}#${JSON.stringify(constants)}`;
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      const moduleKey = `${file}#${elem}`;
      let module = this.#modules.get(moduleKey);
      if (!module) {
        const code = elemPrelude(elem) + loadWgsl(file);
        module = this.device.createShaderModule({ label: `${file} (${elem})`, code });
        this.#modules.set(moduleKey, module);
      }
      pipeline = this.device.createComputePipeline({
        label: `${file}:${entryPoint}`,
        layout: "auto",
        compute: { module, entryPoint, constants },
      });
      this.#pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  get size(): number {
    return this.#pipelines.size;
  }
}
