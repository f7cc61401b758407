import type { FastifyInstance } from 'fastify';
import { errors } from '../../shared/errors/index.js';
import type { BackendKind, ModelDefinition } from '../../shared/models/model-spec.js';
import type { ModelRegistry } from '../../shared/models/registry.js';
import type { ModelRouter } from '../../shared/routing/router.js';
import { ModelParamsSchema, ProblemSchema } from '../http/schemas.js';

export interface ModelsRoutesOptions {
  registry: ModelRegistry;
  router: ModelRouter;
}

export async function modelRoutes(app: FastifyInstance, opts: ModelsRoutesOptions) {
  const { registry, router } = opts;

  const describe = (model: ModelDefinition) => {
    const availability = router.availability(model);
    return {
      name: model.name,
      ...(model.description ? { description: model.description } : {}),
      task: model.task,
      status: availability.state,
      ...(availability.reason ? { reason: availability.reason } : {}),
      versions: availability.versions,
      backends: Object.keys(model.backends),
      routing: model.routing.strategy,
      input: {
        width: model.input.width,
        height: model.input.height,
        layout: model.input.layout,
        channel_order: model.input.channel_order,
        resize: model.input.resize,
      },
      labels: model.labels?.length ?? 0,
    };
  };

  /** The seed's shape: TF models as a list, ONNX models as a map by name. */
  app.get('/models', async () => {
    const on = (backend: BackendKind) => registry.list().filter((m) => m.backends[backend]);
    return {
      tensorflow: { models: on('tensorflow').map(describe) },
      onnx: { models: Object.fromEntries(on('onnx').map((m) => [m.name, describe(m)])) },
    };
  });

  app.get<{ Params: { model: string } }>(
    '/models/:model',
    {
      schema: {
        params: ModelParamsSchema,
        response: { '4xx': ProblemSchema },
      },
    },
    async (request) => {
      const model = registry.get(request.params.model);
      if (!model) throw new errors.MODEL_NOT_FOUND(request.params.model);
      return describe(model);
    },
  );
}
