import { backendServing } from '../../shared/backends/backend-health.js';
import type { BackendSnapshot } from '../../shared/backends/backend-status.js';
import { byVersionDesc } from '../../shared/backends/backend-status.js';
import type { BackendKind, ModelDefinition } from '../../shared/models/model-spec.js';
import type { ModelRegistry } from '../../shared/models/registry.js';
import { errors } from '../http/errors.js';
import { BackendSelector, type Candidate } from './backend-selector.js';

export interface Route {
  model: ModelDefinition;
  backend: BackendKind;
  /** The client chose the backend: the job stays there (no fallback). */
  pinned: boolean;
  /**
   * The version that would serve the request on `backend` now: the one asked for, or the newest
   * its live workers report. Absent when they report none (the result cache is then not used).
   */
  version?: string;
}

export interface RouteRequest {
  model: string;
  version?: string;
  /** A backend the client insists on, where the model allows choosing. */
  backend?: BackendKind;
}

/** What the router needs to know about backends: the latest picture of each. */
export interface BackendStatusSource {
  snapshot(backend: BackendKind): BackendSnapshot;
}

/** Why one backend cannot take a request now. */
interface Refusal {
  kind: 'no-worker' | 'down' | 'model' | 'version';
  reason: string;
}

interface Evaluation {
  model: ModelDefinition;
  candidates: (Candidate & { versions: string[] })[];
  /**
   * Backends with no worker at all whose pool scales from zero: their queue is where a worker
   * will start (KEDA activates on the first queued job). Used only when no live backend can serve.
   */
  cold: BackendKind[];
  refusals: Refusal[];
}

/**
 * Picks the backend for a request. Every backend of the model is checked against the latest worker
 * reports: it needs a live worker, a reachable server (remote backends: a replica that answers and
 * whose circuit is not open), the model ready, and the requested version. Among those that pass,
 * the model's routing strategy chooses. Throws catalogue errors: unknown model 404, unknown version
 * 404, a backend the model does not have 404, a backend choice the model forbids 400, servers
 * down 503 BACKEND_UNAVAILABLE, nothing loaded 503 MODEL_UNAVAILABLE.
 */
export class ModelRouter {
  private readonly selector = new BackendSelector();

  constructor(
    private readonly registry: ModelRegistry,
    private readonly status: BackendStatusSource,
    /** Backends whose worker pools scale from zero (AUTOSCALED_BACKENDS). */
    private readonly scaledFromZero: ReadonlySet<BackendKind> = new Set(),
  ) {}

  route(request: RouteRequest): Route {
    const { model, candidates, cold, refusals } = this.evaluate(request);
    if (candidates.length === 0 && cold[0]) {
      // Queued for the pool to wake up to; the version is the worker's to check when it runs.
      const route: Route = { model, backend: cold[0], pinned: request.backend !== undefined };
      if (request.version !== undefined) route.version = request.version;
      return route;
    }
    if (candidates.length === 0) throw refusal(model, request, refusals);
    const backend = this.selector.choose(model, candidates);
    const version = request.version ?? candidates.find((c) => c.backend === backend)?.versions[0];
    const route: Route = { model, backend, pinned: request.backend !== undefined };
    if (version !== undefined) route.version = version;
    return route;
  }

  /**
   * Whether a model can be served now, and if not, why (for GET /models). Reads the same picture
   * as `route` without taking a turn of its strategy.
   */
  availability(model: ModelDefinition): {
    state: 'ready' | 'unavailable';
    reason?: string;
    versions: string[];
  } {
    const { candidates, cold, refusals } = this.evaluate({ model: model.name });
    if (candidates.length === 0 && cold.length > 0) return { state: 'ready', versions: [] };
    if (candidates.length === 0) {
      const { message } = refusal(model, { model: model.name }, refusals);
      return { state: 'unavailable', reason: message, versions: [] };
    }
    const versions = new Set(candidates.flatMap((c) => c.versions));
    return { state: 'ready', versions: [...versions].sort(byVersionDesc) };
  }

  private evaluate(request: RouteRequest): Evaluation {
    const model = this.registry.get(request.model);
    if (!model) throw new errors.MODEL_NOT_FOUND(request.model);
    const served = Object.keys(model.backends) as BackendKind[];
    if (request.backend !== undefined) {
      if (!served.includes(request.backend)) {
        throw new errors.MODEL_BACKEND_NOT_FOUND(model.name, request.backend, served.join(', '));
      }
      if (!model.routing.allow_backend_choice) {
        throw new errors.BACKEND_CHOICE_NOT_ALLOWED(model.name);
      }
    }

    const candidates: Evaluation['candidates'] = [];
    const cold: BackendKind[] = [];
    const refusals: Refusal[] = [];
    for (const backend of request.backend ? [request.backend] : served) {
      const snapshot = this.status.snapshot(backend);
      const status = snapshot.models[model.name];
      const serving = backendServing(snapshot);
      if (!serving.serving) {
        if (!serving.down && this.scaledFromZero.has(backend)) cold.push(backend);
        refusals.push({ kind: serving.down ? 'down' : 'no-worker', reason: serving.reason });
      } else if (status?.state !== 'ready') {
        refusals.push({
          kind: 'model',
          reason: status?.reason ?? `the ${backend} workers do not serve it`,
        });
      } else if (request.version && !status.versions.includes(request.version)) {
        refusals.push({
          kind: 'version',
          reason: `${backend} serves versions ${status.versions.join(', ')}`,
        });
      } else {
        candidates.push({ backend, load: load(snapshot), versions: status.versions });
      }
    }
    return { model, candidates, cold, refusals };
  }
}

/** The error for a request no backend can take, from the reasons each gave. */
function refusal(model: ModelDefinition, request: RouteRequest, refusals: Refusal[]): Error {
  const reasons = refusals.map((r) => r.reason).join('; ');
  const kinds = new Set(refusals.map((r) => r.kind));
  // A version is "not found" only when every backend answered without it: a backend that is down
  // might have it, so then the answer is "unavailable", which invites a retry.
  if (kinds.has('version') && !kinds.has('no-worker') && !kinds.has('down')) {
    return new errors.MODEL_VERSION_NOT_FOUND(model.name, request.version);
  }
  if (kinds.has('down')) {
    return new errors.BACKEND_UNAVAILABLE(`Model "${model.name}" cannot be served now: ${reasons}`);
  }
  return new errors.MODEL_UNAVAILABLE(model.name, reasons);
}

/** Queued and running jobs per worker slot, when the queue depth is known. */
function load(snapshot: BackendSnapshot): number | undefined {
  if (snapshot.queueDepth === undefined) return undefined;
  const slots = snapshot.workers.reduce((sum, w) => sum + (w.concurrency ?? 1), 0);
  return snapshot.queueDepth / Math.max(slots, 1);
}
