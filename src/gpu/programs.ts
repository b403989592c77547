import { elemPrelude, type ElemType, lanePrelude, type LaneType, loadWgsl } from "./wgsl.ts";

/**
 * Compute pipelines keyed by (file, entry point, override constants, operand type): every distinct pipeline is
 * compiled once, at setup, and reused by every later dispatch. Shapes that vary per call travel as uniforms,
 * not as constants. `elem` picks the prelude a kernel written against `Elem` is compiled with, `lane` the one a
 * kernel written against `Lane` is (wgsl.ts); a module that uses no `Lane` is compiled without that prelude.
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
    lane?: LaneType,
  ): GPUComputePipeline {
    const variant = lane ? `${elem}, ${lane}` : elem;
    const key = `${file}#${variant}#${entryPoint}#${JSON.stringify(constants)}`;
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      const moduleKey = `${file}#${variant}`;
      let module = this.#modules.get(moduleKey);
      if (!module) {
        const code = elemPrelude(elem) + (lane ? lanePrelude(lane) : "") + loadWgsl(file);
        module = this.device.createShaderModule({ label: `${file} (${variant})`, code });
        this.#modules.set(moduleKey, module);
      }
      pipeline = this.device.createComputePipeline({
        label: `${file}:${entryPoint}${lane ? ` (${lane})` : ""}`,
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
