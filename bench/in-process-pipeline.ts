import type { Config } from '../shared/config/config.js';
import type { Classification } from '../shared/jobs/inference-result.js';
import type { ModelDefinition } from '../shared/models/model-spec.js';
import { ModelRegistry } from '../shared/models/registry.js';
import { OnnxRuntimeBackend } from '../workers/backends/onnx-runtime.backend.js';
import { classify } from '../workers/postprocess/index.js';
import { preprocess } from '../workers/preprocess/preprocess.js';

/** The model every contender runs. */
export const BENCH_MODEL = 'text_orientation';

/**
 * The gateway worker's own stages for a classifier, called in this process with no HTTP, queue or
 * storage: decode and preprocess (sharp), ONNX Runtime, top-k. The direct contender runs it in the
 * benchmark process, the plain server behind one Fastify route.
 */
export class InProcessPipeline {
  private constructor(
    private readonly model: ModelDefinition,
    private readonly backend: OnnxRuntimeBackend,
    private readonly maxPixels: number,
  ) {}

  static async load(config: Config, modelName = BENCH_MODEL): Promise<InProcessPipeline> {
    const model = ModelRegistry.load(config.models.configPath).get(modelName);
    if (!model) throw new Error(`model ${modelName} is not in ${config.models.configPath}`);
    const backend = new OnnxRuntimeBackend({
      repository: config.models.repository,
      intraOpThreads: config.backends.onnxIntraOpThreads,
    });
    const status = (await backend.load([model]))[model.name];
    if (status?.state !== 'ready') {
      throw new Error(`ONNX Runtime cannot serve ${modelName}: ${JSON.stringify(status)}`);
    }
    return new InProcessPipeline(model, backend, config.uploads.maxPixels);
  }

  async run(image: Buffer): Promise<Classification[]> {
    const { model } = this;
    const input = await preprocess(image, model.input, { maxPixels: this.maxPixels });
    const { output } = await this.backend.infer({ model, input });
    return classify(output, {
      activation: model.postprocess.activation,
      topK: model.postprocess.top_k,
      ...(model.labels ? { labels: model.labels } : {}),
    });
  }

  close(): Promise<void> {
    return this.backend.close();
  }
}
