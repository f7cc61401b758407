import type { ModelStatus } from '../../../shared/backends/backend-status.js';
import { byVersionDesc } from '../../../shared/backends/backend-status.js';
import { jobFailure, withCause } from '../../../shared/errors/index.js';
import type { BackendKind, ModelDefinition } from '../../../shared/models/model-spec.js';
import type {
  BackendHealth,
  InferenceBackend,
  InferenceRequest,
  InferenceResponse,
} from '../inference-backend.js';
import type { BreakerOptions, HttpRequest, HttpResponse } from './replica.js';
import { ReplicaPool } from './replica-pool.js';

/** A request to one server. */
export type Send = (request: HttpRequest) => Promise<HttpResponse>;

export interface RemoteBackendOptions {
  /** The servers' base URLs. */
  urls: readonly string[];
  /** Budget of one inference call. */
  timeoutMs: number;
  /** Keep-alive connections per server. */
  connections: number;
  /**
   * Calls in flight per server for a model that batches (capped by `connections`): the next batch
   * fills in the worker while they run. @defaultValue 1
   */
  batchCalls?: number;
  breaker: BreakerOptions;
  /** Budget of one health probe request. */
  probeTimeoutMs: number;
}

/** One server's answer about one model. */
export interface ModelOnReplica {
  state: 'ready' | 'unavailable';
  /** Versions ready there, newest first. */
  versions: string[];
  /** Why not, in a client's words (see ModelStatus). */
  reason?: string;
  /** Why not, in the operator's: the server's own answer. */
  detail?: string;
}

/**
 * A model's signature checked against its registry entry: what to call it with, or why not (in a
 * client's words, and the server's answer as the operator's `detail`).
 */
export type Inspection<T> =
  | { ok: true; signature: T }
  | { ok: false; reason: string; detail?: string };

interface Tracked<T> {
  model: ModelDefinition;
  /** The newest version last inspected and what came of it. */
  inspected?: { version: string; result: Inspection<T> };
  inspecting: boolean;
}

/**
 * What the TF Serving and Open Inference Protocol backends share: the replica pool (balancing,
 * keep-alive, timeouts, breakers) and model tracking. A probe asks every replica about every model
 * at once; when a model's newest version changes, its signature is read from a replica that has it
 * and checked against the registry, so a mismatch makes the model unavailable with the reason
 * rather than failing each request. A model is ready when its signature fits and some replica that
 * answers has it.
 */
export abstract class RemoteBackend<Signature> implements InferenceBackend {
  abstract readonly kind: BackendKind;
  protected readonly pool: ReplicaPool;
  private readonly tracked = new Map<string, Tracked<Signature>>();
  private statuses: Record<string, ModelStatus> = {};
  private probing: Promise<void> | undefined;

  constructor(
    name: string,
    private readonly options: RemoteBackendOptions,
  ) {
    this.pool = new ReplicaPool({
      urls: options.urls,
      name,
      timeoutMs: options.timeoutMs,
      connections: options.connections,
      breaker: options.breaker,
    });
  }

  /** Whether this backend serves the model (its registry entry names this backend). */
  protected abstract serves(model: ModelDefinition): boolean;
  /**
   * Checks one server as a whole before its models are probed; throws when it cannot take
   * requests (the pool then marks it down). Default: nothing beyond the model probes.
   */
  protected async probeServer(_send: Send, _url: string): Promise<void> {}
  /** Asks one server whether the model is ready and in which versions. 4xx answers are states. */
  protected abstract probeModel(send: Send, model: ModelDefinition): Promise<ModelOnReplica>;
  /** Reads the model's signature from one server and checks it against the registry entry. */
  protected abstract inspect(
    send: Send,
    model: ModelDefinition,
    version: string | undefined,
  ): Promise<Inspection<Signature>>;
  abstract infer(request: InferenceRequest): Promise<InferenceResponse>;

  async load(models: readonly ModelDefinition[]): Promise<Record<string, ModelStatus>> {
    for (const model of models) {
      if (this.serves(model)) this.tracked.set(model.name, { model, inspecting: false });
    }
    await this.probe();
    return Object.fromEntries(
      models.filter((m) => this.tracked.has(m.name)).map((m) => [m.name, this.statuses[m.name]!]),
    );
  }

  /** One probe at a time: a caller during a probe waits for that one. */
  probe(): Promise<void> {
    this.probing ??= this.probeAll().finally(() => {
      this.probing = undefined;
    });
    return this.probing;
  }

  health(): BackendHealth {
    return { models: this.statuses, replicas: this.pool.health() };
  }

  /**
   * Calls the dynamic batcher sends at once: `batchCalls` per server that can take one (at least
   * one server's worth, so that a call still goes and fails fast when none can). A server runs a
   * few calls at a time (Triton's model instances); calls beyond that only queue on it, each with
   * the few jobs ready when it left, where holding them in the worker makes one larger batch.
   */
  concurrentCalls(): number {
    const perServer = Math.min(this.options.batchCalls ?? 1, this.options.connections);
    return Math.max(1, this.pool.servingCount()) * perServer;
  }

  canServe(): boolean {
    return this.pool.canServe();
  }

  onHealthChange(listener: () => void): void {
    this.pool.onChange(listener);
  }

  async close(): Promise<void> {
    await this.probing?.catch(() => undefined);
    await this.pool.close();
  }

  /** The checked signature of a model, or MODEL_UNAVAILABLE with the reason it has none. */
  protected signature(model: ModelDefinition): Signature {
    const result = this.tracked.get(model.name)?.inspected?.result;
    if (result?.ok) return result.signature;
    const status = this.statuses[model.name];
    const failure = jobFailure(
      'MODEL_UNAVAILABLE',
      model.name,
      status?.reason ?? 'not served by this worker',
    );
    throw status?.detail ? withCause(failure, new Error(status.detail)) : failure;
  }

  /** The newest version some replica has ready (the one a request without a version gets). */
  protected newestVersion(model: ModelDefinition): string | undefined {
    return this.statuses[model.name]?.versions[0];
  }

  private async probeAll(): Promise<void> {
    const models = [...this.tracked.values()];
    const results = await this.pool.probe(async (send, url) => {
      await this.probeServer(send, url);
      return Promise.all(models.map((tracked) => this.probeOne(send, tracked)));
    }, this.options.probeTimeoutMs);
    const statuses: Record<string, ModelStatus> = {};
    models.forEach((tracked, i) => {
      const perReplica = results.map((r) =>
        r.ok
          ? { url: r.url, ...r.value[i]! }
          : {
              url: r.url,
              state: 'unavailable' as const,
              versions: [],
              reason: this.pool.describeFailure(r.url, r.error),
              detail: r.error.message,
            },
      );
      statuses[tracked.model.name] = this.merge(
        tracked,
        perReplica,
        results.some((r) => r.ok),
      );
    });
    this.statuses = statuses;
  }

  /** One model on one server; inspects its signature when its newest version is new to us. */
  private async probeOne(send: Send, tracked: Tracked<Signature>): Promise<ModelOnReplica> {
    const found = await this.probeModel(send, tracked.model);
    const newest = found.versions[0];
    if (found.state === 'ready' && tracked.inspected?.version !== newest && !tracked.inspecting) {
      tracked.inspecting = true;
      try {
        tracked.inspected = {
          version: newest ?? '',
          result: await this.inspect(send, tracked.model, newest),
        };
      } finally {
        tracked.inspecting = false;
      }
    }
    return found;
  }

  private merge(
    tracked: Tracked<Signature>,
    perReplica: (ModelOnReplica & { url: string })[],
    anyAnswered: boolean,
  ): ModelStatus {
    const replicas = Object.fromEntries(
      perReplica.map(({ url, state, versions, reason, detail }) => [
        url,
        { state, versions, reason, detail },
      ]),
    );
    const unavailable = (reason: string, detail?: string): ModelStatus => ({
      state: 'unavailable',
      versions: [],
      reason,
      detail,
      replicas,
    });
    const details = () =>
      perReplica
        .filter((r) => r.detail)
        .map((r) => `${r.url}: ${r.detail}`)
        .join('; ');
    if (!anyAnswered) {
      const errors = perReplica.map((r) => r.reason).join('; ');
      return unavailable(`no ${this.pool.name} server answered: ${errors}`, details());
    }
    const ready = perReplica.filter((r) => r.state === 'ready');
    if (ready.length === 0) {
      const reasons = [...new Set(perReplica.map((r) => r.reason ?? 'not ready'))];
      return unavailable(reasons.join('; '), details());
    }
    const result = tracked.inspected?.result;
    if (!result) return unavailable('its signature has not been read yet');
    if (!result.ok) return unavailable(result.reason, result.detail);
    const versions = [...new Set(ready.flatMap((r) => r.versions))].sort(byVersionDesc);
    return { state: 'ready', versions, replicas };
  }
}
