import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { BackendKind, ModelDefinition } from '../../shared/models/model-spec.js';
import type { ModelRegistry } from '../../shared/models/registry.js';
import { errors } from '../http/errors.js';
import { ModelParamsSchema, ProblemResponses } from '../http/schemas.js';
import type { ModelRouter } from '../routing/router.js';

export interface ModelsRoutesOptions {
  registry: ModelRegistry;
  router: ModelRouter;
}

const ModelSchema = Type.Object({
  name: Type.String(),
  description: Type.Optional(Type.String()),
  task: Type.String({ description: 'classification, detection, embedding or raw' }),
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  reason: Type.Optional(Type.String({ description: 'Why the model cannot be served now.' })),
  versions: Type.Array(Type.String(), {
    description: 'Versions that can be served, newest first.',
  }),
  backends: Type.Array(Type.String()),
  routing: Type.String({ description: 'The routing strategy among its backends.' }),
  input: Type.Object({
    width: Type.Integer(),
    height: Type.Integer(),
    layout: Type.String(),
    channel_order: Type.String(),
    resize: Type.String(),
  }),
  labels: Type.Integer({ description: 'How many labels the model has.' }),
});

/** The seed's shape: TF models as a list, ONNX models as a map by name. */
const ModelListSchema = Type.Object({
  tensorflow: Type.Object({ models: Type.Array(ModelSchema) }),
  onnx: Type.Object({ models: Type.Record(Type.String(), ModelSchema) }),
});

/** One model as GET /models/{name} describes it. */
export type ModelDescription = Static<typeof ModelSchema>;
/** GET /models. */
export type ModelList = Static<typeof ModelListSchema>;

export const modelRoutes: FastifyPluginAsyncTypebox<ModelsRoutesOptions> = async (app, opts) => {
  const { registry, router } = opts;

  const describe = (model: ModelDefinition) => {
    const availability = router.availability(model);
    return {
      name: model.name,
      description: model.description,
      task: model.task,
      status: availability.state,
      reason: availability.reason,
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

  app.get(
    '/models',
    {
      schema: {
        summary: 'The registered models and whether each can be served now',
        tags: ['models'],
        response: { 200: ModelListSchema, ...ProblemResponses },
      },
    },
    async () => {
      const on = (backend: BackendKind) => registry.list().filter((m) => m.backends[backend]);
      return {
        tensorflow: { models: on('tensorflow').map(describe) },
        onnx: { models: Object.fromEntries(on('onnx').map((m) => [m.name, describe(m)])) },
      };
    },
  );

  app.get(
    '/models/:model',
    {
      schema: {
        summary: 'One model',
        tags: ['models'],
        params: ModelParamsSchema,
        response: { 200: ModelSchema, ...ProblemResponses },
      },
    },
    async (request) => {
      const model = registry.get(request.params.model);
      if (!model) throw new errors.MODEL_NOT_FOUND(request.params.model);
      return describe(model);
    },
  );
};
