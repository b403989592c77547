import { loadWgsl } from "./wgsl.ts";

/**
 * Compute pipelines keyed by (file, entry point, override constants): every distinct pipeline is compiled once,
 * at setup, and reused by every later dispatch. Shapes that vary per call travel as uniforms, not as constants.
 */
export class ProgramCache {
  #pipelines = new Map<string, GPUComputePipeline>();
  #modules = new Map<string, GPUShaderModule>();

  constructor(readonly device: GPUDevice) {}

  get(file: string, entryPoint: string, constants: Record<string, number> = {}): GPUComputePipeline {
    const key = `${file}#${entryPoint}#${JSON.stringify(constants)}`;
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      let module = this.#modules.get(file);
      if (!module) {
        module = this.device.createShaderModule({ label: file, code: loadWgsl(file) });
        this.#modules.set(file, module);
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
