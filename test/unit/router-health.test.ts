import { describe, expect, it } from 'vitest';
import { type BackendStatusSource, ModelRouter } from '../../api/routing/router.js';
import type { ReplicaHealth } from '../../shared/backends/backend-health.js';
import type {
  BackendSnapshot,
  ModelStatus,
  WorkerReport,
} from '../../shared/backends/backend-status.js';
import type { BackendKind } from '../../shared/models/model-spec.js';
import { ModelRegistry } from '../../shared/models/registry.js';

const input = { width: 8, height: 8 };
const registry = ModelRegistry.fromDocument({
  models: {
    tf_only: { task: 'raw', backends: { tensorflow: {} }, input },
    both: { task: 'raw', backends: { tensorflow: {}, onnx: {} }, input },
    pinned_off: {
      task: 'raw',
      backends: { tensorflow: {}, onnx: {} },
      input,
      routing: { allow_backend_choice: false },
    },
    balanced: {
      task: 'raw',
      backends: { tensorflow: {}, onnx: {} },
      input,
      routing: { strategy: 'least_loaded' },
    },
    turns: {
      task: 'raw',
      backends: { tensorflow: {}, onnx: {} },
      input,
      routing: { strategy: 'round_robin' },
    },
  },
});
const ready: ModelStatus = { state: 'ready', versions: ['1'] };
const allReady = Object.fromEntries(registry.list().map((m) => [m.name, ready]));

const replica = (
  url: string,
  healthy: boolean,
  circuit: ReplicaHealth['circuit'],
): ReplicaHealth => ({
  url,
  healthy,
  circuit,
  inFlight: 0,
  ...(healthy ? {} : { error: 'connect ECONNREFUSED' }),
});

interface BackendPicture {
  replicas?: ReplicaHealth[];
  queueDepth?: number;
  workers?: number;
}

function source(pictures: Partial<Record<BackendKind, BackendPicture>>): BackendStatusSource {
  return {
    snapshot(backend): BackendSnapshot {
      const picture = pictures[backend];
      if (!picture) return { backend, workers: [], models: {} };
      const workers: WorkerReport[] = Array.from({ length: picture.workers ?? 1 }, (_, i) => ({
        workerId: `${backend}-${i}`,
        backend,
        host: 'test',
        pid: i,
        startedAt: 0,
        reportedAt: 0,
        expiresAt: Number.MAX_SAFE_INTEGER,
        concurrency: 2,
        models: allReady,
        ...(picture.replicas ? { replicas: picture.replicas } : {}),
      }));
      return {
        backend,
        workers,
        models: allReady,
        ...(picture.queueDepth === undefined ? {} : { queueDepth: picture.queueDepth }),
      };
    },
  };
}

function failure(fn: () => unknown): { code: string; statusCode: number; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; statusCode: number; message: string };
  }
  throw new Error('expected an error');
}

const tfUp = {
  replicas: [replica('http://tf-1', true, 'closed'), replica('http://tf-2', true, 'closed')],
};
const tfDown = {
  replicas: [replica('http://tf-1', false, 'closed'), replica('http://tf-2', false, 'open')],
};

describe('routing by backend health', () => {
  it('routes to TF while one replica answers with its circuit closed or half-open', () => {
    const oneLeft = {
      replicas: [
        replica('http://tf-1', false, 'closed'),
        replica('http://tf-2', true, 'half_open'),
      ],
    };
    const router = new ModelRouter(registry, source({ tensorflow: oneLeft, onnx: {} }));
    expect(router.route({ model: 'both' }).backend).toBe('tensorflow');
  });

  it('skips TF when every replica is down or its circuit open: a model on both goes to onnx', () => {
    const router = new ModelRouter(registry, source({ tensorflow: tfDown, onnx: {} }));
    expect(router.route({ model: 'both' })).toMatchObject({ backend: 'onnx', pinned: false });
    const circuitsOpen = {
      replicas: [replica('http://tf-1', true, 'open'), replica('http://tf-2', true, 'open')],
    };
    const open = new ModelRouter(registry, source({ tensorflow: circuitsOpen, onnx: {} }));
    expect(open.route({ model: 'both' }).backend).toBe('onnx');
  });

  it('a model only on TF, with TF down, is 503 BACKEND_UNAVAILABLE counting the replicas, not naming them', () => {
    const router = new ModelRouter(registry, source({ tensorflow: tfDown, onnx: {} }));
    const err = failure(() => router.route({ model: 'tf_only' }));
    expect(err.code).toBe('BACKEND_UNAVAILABLE');
    expect(err.statusCode).toBe(503);
    expect(err.message).toContain('tf_only');
    expect(err.message).toContain('(2 servers: 2 down)');
    // Addresses and their errors are for operators (GET /health), not for clients.
    expect(err.message).not.toContain('http://tf-1');
    expect(err.message).not.toContain('ECONNREFUSED');
    expect(router.availability(registry.get('tf_only')!)).toMatchObject({
      state: 'unavailable',
      reason: expect.stringContaining('no tensorflow server can take requests'),
    });
  });

  it('no TF worker at all stays MODEL_UNAVAILABLE', () => {
    const router = new ModelRouter(registry, source({ onnx: {} }));
    expect(failure(() => router.route({ model: 'tf_only' })).code).toBe('MODEL_UNAVAILABLE');
  });
});

describe('a worker pool that scales from zero (AUTOSCALED_BACKENDS)', () => {
  const scaled = new Set<BackendKind>(['tensorflow']);

  it('takes its models with no worker running: the job is queued for the pool to wake up to', () => {
    const router = new ModelRouter(registry, source({ onnx: {} }), scaled);
    expect(router.route({ model: 'tf_only' })).toMatchObject({ backend: 'tensorflow' });
    expect(router.route({ model: 'tf_only', version: '7' })).toMatchObject({ version: '7' });
    expect(router.availability(registry.get('tf_only')!).state).toBe('ready');
  });

  it('prefers a backend with a live worker, and wakes a pool only when none can serve', () => {
    const router = new ModelRouter(registry, source({ onnx: {} }), scaled);
    expect(router.route({ model: 'both' }).backend).toBe('onnx');
    const idle = new ModelRouter(registry, source({}), scaled);
    expect(idle.route({ model: 'both' }).backend).toBe('tensorflow');
  });

  it('does not queue for a pool whose workers run but cannot reach their servers', () => {
    const router = new ModelRouter(registry, source({ tensorflow: tfDown, onnx: {} }), scaled);
    expect(failure(() => router.route({ model: 'tf_only' })).code).toBe('BACKEND_UNAVAILABLE');
  });

  it('other pools with no worker still refuse', () => {
    const router = new ModelRouter(registry, source({}), new Set<BackendKind>(['onnx']));
    expect(failure(() => router.route({ model: 'tf_only' })).code).toBe('MODEL_UNAVAILABLE');
  });
});

describe('a backend chosen by the request', () => {
  const router = new ModelRouter(registry, source({ tensorflow: tfUp, onnx: {} }));

  it('is used, and the route is pinned (no fallback)', () => {
    expect(router.route({ model: 'both', backend: 'onnx' })).toMatchObject({
      backend: 'onnx',
      pinned: true,
    });
  });

  it('that does not serve the model is 404 MODEL_BACKEND_NOT_FOUND', () => {
    const err = failure(() => router.route({ model: 'tf_only', backend: 'onnx' }));
    expect(err).toMatchObject({ code: 'MODEL_BACKEND_NOT_FOUND', statusCode: 404 });
    expect(err.message).toContain('its backends: tensorflow');
  });

  it('on a model that forbids choosing is 400 BACKEND_CHOICE_NOT_ALLOWED', () => {
    const err = failure(() => router.route({ model: 'pinned_off', backend: 'tensorflow' }));
    expect(err).toMatchObject({ code: 'BACKEND_CHOICE_NOT_ALLOWED', statusCode: 400 });
  });

  it('that is down is 503: no other backend stands in', () => {
    const down = new ModelRouter(registry, source({ tensorflow: tfDown, onnx: {} }));
    expect(failure(() => down.route({ model: 'both', backend: 'tensorflow' })).code).toBe(
      'BACKEND_UNAVAILABLE',
    );
  });
});

describe('strategies over live backends', () => {
  it('least_loaded compares queue depth per worker slot', () => {
    // TF: 6 jobs over 1 worker x 2 slots = 3; onnx: 8 jobs over 4 workers x 2 slots = 1.
    const router = new ModelRouter(
      registry,
      source({ tensorflow: { ...tfUp, queueDepth: 6 }, onnx: { queueDepth: 8, workers: 4 } }),
    );
    expect(router.route({ model: 'balanced' }).backend).toBe('onnx');
    const idle = new ModelRouter(
      registry,
      source({ tensorflow: { ...tfUp, queueDepth: 0 }, onnx: { queueDepth: 8, workers: 4 } }),
    );
    expect(idle.route({ model: 'balanced' }).backend).toBe('tensorflow');
  });

  it('round_robin takes turns only among backends that can serve; availability takes no turn', () => {
    const router = new ModelRouter(registry, source({ tensorflow: tfUp, onnx: {} }));
    const model = registry.get('turns')!;
    router.availability(model);
    router.availability(model);
    expect([1, 2, 3].map(() => router.route({ model: 'turns' }).backend)).toEqual([
      'tensorflow',
      'onnx',
      'tensorflow',
    ]);
    const tfGone = new ModelRouter(registry, source({ tensorflow: tfDown, onnx: {} }));
    expect([1, 2].map(() => tfGone.route({ model: 'turns' }).backend)).toEqual(['onnx', 'onnx']);
  });
});
