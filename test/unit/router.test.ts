import { describe, expect, it } from 'vitest';
import { type BackendStatusSource, ModelRouter } from '../../api/routing/router.js';
import type {
  BackendSnapshot,
  ModelStatus,
  WorkerReport,
} from '../../shared/backends/backend-status.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import { ModelRegistry } from '../../shared/models/registry.js';

const input = { width: 8, height: 8 };

// `both` lists tensorflow first: registry order, not a fixed backend order, decides priority.
const registry = ModelRegistry.fromDocument({
  models: {
    onnx_only: { task: 'classification', backends: { onnx: {} }, input },
    tf_only: { task: 'classification', backends: { tensorflow: {} }, input },
    both: { task: 'classification', backends: { tensorflow: {}, onnx: {} }, input },
  },
});

type Picture = Partial<Record<BackendKind, Record<string, ModelStatus> | 'no-workers'>>;

/** The backend picture as the status cache would hand it over. */
function statusSource(picture: Picture): BackendStatusSource {
  return {
    snapshot(backend: BackendKind): BackendSnapshot {
      const models = picture[backend];
      if (models === undefined || models === 'no-workers') {
        return { backend, workers: [], models: {} };
      }
      const worker: WorkerReport = {
        workerId: `${backend}-1`,
        backend,
        host: 'test',
        pid: 1,
        startedAt: 0,
        reportedAt: 0,
        expiresAt: Number.MAX_SAFE_INTEGER,
        models,
      };
      return { backend, workers: [worker], models };
    },
  };
}

const ready = (...versions: string[]): ModelStatus => ({ state: 'ready', versions });
const unavailable = (reason: string): ModelStatus => ({
  state: 'unavailable',
  versions: [],
  reason,
});

interface CatalogueError {
  code: string;
  statusCode: number;
  message: string;
}

function routeError(router: ModelRouter, model: string, version?: string): CatalogueError {
  try {
    router.route({ model, ...(version ? { version } : {}) });
  } catch (err) {
    return err as CatalogueError;
  }
  throw new Error(`expected routing ${model} to fail`);
}

describe('ModelRouter.route', () => {
  it('an unknown model is MODEL_NOT_FOUND (404)', () => {
    const router = new ModelRouter(registry, statusSource({ onnx: { onnx_only: ready('1') } }));
    const err = routeError(router, 'no_such_model');
    expect(err.code).toBe('MODEL_NOT_FOUND');
    expect(err.statusCode).toBe(404);
    expect(err.message).toContain('no_such_model');
  });

  it('routes to the backend that serves the model', () => {
    const router = new ModelRouter(
      registry,
      statusSource({ onnx: { onnx_only: ready('1') }, tensorflow: { tf_only: ready('3') } }),
    );
    expect(router.route({ model: 'onnx_only' })).toMatchObject({
      backend: 'onnx',
      model: { name: 'onnx_only' },
    });
    expect(router.route({ model: 'tf_only' }).backend).toBe('tensorflow');
  });

  it('no live worker is MODEL_UNAVAILABLE (503) and says so', () => {
    const router = new ModelRouter(registry, statusSource({}));
    const err = routeError(router, 'onnx_only');
    expect(err.code).toBe('MODEL_UNAVAILABLE');
    expect(err.statusCode).toBe(503);
    expect(err.message).toContain('onnx_only');
    expect(err.message).toContain('no onnx worker is running');
  });

  it('passes on the reason the workers give', () => {
    const reason = 'no model file: put the ONNX file at models/repository/onnx_only/1/model.onnx';
    const router = new ModelRouter(
      registry,
      statusSource({ onnx: { onnx_only: unavailable(reason) } }),
    );
    const err = routeError(router, 'onnx_only');
    expect(err.code).toBe('MODEL_UNAVAILABLE');
    expect(err.message).toContain(reason);
  });

  it('workers that do not list the model make it unavailable', () => {
    const router = new ModelRouter(registry, statusSource({ onnx: { other: ready('1') } }));
    const err = routeError(router, 'onnx_only');
    expect(err.code).toBe('MODEL_UNAVAILABLE');
    expect(err.message).toContain('onnx');
  });

  it('prefers the first backend in registry order', () => {
    const router = new ModelRouter(
      registry,
      statusSource({ onnx: { both: ready('1') }, tensorflow: { both: ready('1') } }),
    );
    expect(router.route({ model: 'both' }).backend).toBe('tensorflow');
  });

  it('falls back to the next backend when the first cannot serve', () => {
    const noWorkers = new ModelRouter(
      registry,
      statusSource({ onnx: { both: ready('1') }, tensorflow: 'no-workers' }),
    );
    expect(noWorkers.route({ model: 'both' }).backend).toBe('onnx');

    const notReady = new ModelRouter(
      registry,
      statusSource({ onnx: { both: ready('1') }, tensorflow: { both: unavailable('down') } }),
    );
    expect(notReady.route({ model: 'both' }).backend).toBe('onnx');
  });

  it('names every backend reason when none can serve', () => {
    const router = new ModelRouter(
      registry,
      statusSource({ onnx: 'no-workers', tensorflow: { both: unavailable('TF Serving is down') } }),
    );
    const err = routeError(router, 'both');
    expect(err.code).toBe('MODEL_UNAVAILABLE');
    expect(err.message).toContain('TF Serving is down');
    expect(err.message).toContain('no onnx worker is running');
  });

  it('routes a version that a backend serves', () => {
    const router = new ModelRouter(
      registry,
      statusSource({ onnx: { onnx_only: ready('3', '2') } }),
    );
    expect(router.route({ model: 'onnx_only', version: '2' }).backend).toBe('onnx');
  });

  it('a version no backend serves is MODEL_VERSION_NOT_FOUND (404)', () => {
    const router = new ModelRouter(
      registry,
      statusSource({ onnx: { onnx_only: ready('3', '2') } }),
    );
    const err = routeError(router, 'onnx_only', '9');
    expect(err.code).toBe('MODEL_VERSION_NOT_FOUND');
    expect(err.statusCode).toBe(404);
    expect(err.message).toContain('onnx_only');
    expect(err.message).toContain('9');
  });

  it('a version missing where one backend is down is MODEL_UNAVAILABLE: the other might have it', () => {
    const router = new ModelRouter(
      registry,
      statusSource({ tensorflow: { both: ready('1') }, onnx: 'no-workers' }),
    );
    const err = routeError(router, 'both', '2');
    expect(err.code).toBe('MODEL_UNAVAILABLE');
    expect(err.message).toContain('no onnx worker is running');
  });

  it('looks for a version on the next backend', () => {
    const router = new ModelRouter(
      registry,
      statusSource({ tensorflow: { both: ready('1') }, onnx: { both: ready('2') } }),
    );
    expect(router.route({ model: 'both', version: '2' }).backend).toBe('onnx');
    expect(router.route({ model: 'both', version: '1' }).backend).toBe('tensorflow');
  });
});

describe('ModelRouter.availability', () => {
  it('ready, with the versions of the chosen backend', () => {
    const router = new ModelRouter(
      registry,
      statusSource({ tensorflow: 'no-workers', onnx: { both: ready('4', '3') } }),
    );
    expect(router.availability(registry.get('both')!)).toEqual({
      state: 'ready',
      versions: ['4', '3'],
    });
  });

  it('unavailable, with the reason', () => {
    const router = new ModelRouter(
      registry,
      statusSource({ onnx: { onnx_only: unavailable('file missing') } }),
    );
    const availability = router.availability(registry.get('onnx_only')!);
    expect(availability.state).toBe('unavailable');
    expect(availability.versions).toEqual([]);
    expect(availability.reason).toContain('file missing');
  });
});
