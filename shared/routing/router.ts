import type { BackendSnapshot } from '../backends/backend-status.js';
import { errors } from '../errors/index.js';
import type { BackendKind, ModelDefinition } from '../models/model-spec.js';
import type { ModelRegistry } from '../models/registry.js';

export interface Route {
  model: ModelDefinition;
  backend: BackendKind;
}

export interface RouteRequest {
  model: string;
  version?: string;
}

/** What the router needs to know about backends: the latest picture of each. */
export interface BackendStatusSource {
  snapshot(backend: BackendKind): BackendSnapshot;
}

/**
 * Picks the backend for a request: the model's backends in registry order, skipping any that has
 * no live worker or whose workers report the model (or the requested version) unavailable.
 * Throws catalogue errors: unknown model 404, unknown version 404, nothing can serve 503.
 */
export class ModelRouter {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly status: BackendStatusSource,
  ) {}

  route(request: RouteRequest): Route {
    const model = this.registry.get(request.model);
    if (!model) throw new errors.MODEL_NOT_FOUND(request.model);

    const reasons: string[] = [];
    // A version is "not found" only when every backend answered without it: a backend that is down
    // might have it, so then the answer is "unavailable", which invites a retry.
    let versionMissing = false;
    let backendDown = false;
    for (const backend of Object.keys(model.backends) as BackendKind[]) {
      const snapshot = this.status.snapshot(backend);
      const status = snapshot.models[model.name];
      if (snapshot.workers.length === 0) {
        backendDown = true;
        reasons.push(`no ${backend} worker is running`);
      } else if (status?.state !== 'ready') {
        reasons.push(status?.reason ?? `the ${backend} workers do not serve it`);
      } else if (request.version && !status.versions.includes(request.version)) {
        versionMissing = true;
        reasons.push(`${backend} serves versions ${status.versions.join(', ')}`);
      } else {
        return { model, backend };
      }
    }
    if (versionMissing && !backendDown) {
      throw new errors.MODEL_VERSION_NOT_FOUND(model.name, request.version);
    }
    throw new errors.MODEL_UNAVAILABLE(model.name, reasons.join('; '));
  }

  /** Whether a model can be served now, and if not, why (for GET /models). */
  availability(model: ModelDefinition): {
    state: 'ready' | 'unavailable';
    reason?: string;
    versions: string[];
  } {
    try {
      const { backend } = this.route({ model: model.name });
      return {
        state: 'ready',
        versions: this.status.snapshot(backend).models[model.name]?.versions ?? [],
      };
    } catch (err) {
      return { state: 'unavailable', reason: (err as Error).message, versions: [] };
    }
  }
}
