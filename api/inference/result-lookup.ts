import {
  type CachedResult,
  type ResultCache,
  type ResultCacheOutcome,
  type ResultCacheTerms,
  scopeOf,
} from '../../shared/cache/result-cache.js';
import type { Config } from '../../shared/config/config.js';
import type { Logger } from '../../shared/logging/logger.js';
import { modelFingerprint } from '../../shared/models/model-fingerprint.js';
import type { InferenceParams } from '../../shared/queues/index.js';
import type { Route } from '../routing/router.js';

export interface ResultLookupDeps {
  cache: ResultCache;
  settings: Config['resultCache'];
  logger: Logger;
  /** Called once per request the cache applies to, with what it did (metrics and /stats). */
  onLookup?: (request: LookupRequest, outcome: ResultCacheOutcome) => void;
}

/** A request as the cache sees it. */
export interface LookupRequest {
  route: Route;
  owner: string;
  /** The image's content address (its SHA-256). */
  imageKey: string;
  params: InferenceParams;
  /** `Cache-Control: no-cache` or `no-store`: do not answer from the cache, but refresh it. */
  bypass: boolean;
  requestId: string;
}

/** What the cache has for a request. Neither field: the cache does not apply to it. */
export interface Lookup {
  /** What the job must carry for its worker to remember its result. */
  terms?: ResultCacheTerms;
  /** The answer, found for exactly this request. */
  hit?: CachedResult;
}

/**
 * The API side of the result cache: decides whether it applies to a request and looks its answer
 * up. The address is the one the worker will file the answer under (see ResultCacheWriter): the
 * owner (or `global`), model, registry fingerprint, the route's backend, the version that backend
 * serves now (requested, or its newest), the image's hash and `top_k`/`threshold`. A request whose
 * version cannot be resolved (no worker reports one) is not cached at all. A lookup that fails
 * (Redis slow or down) counts as a miss: the request runs as if there were no cache.
 */
export class ResultLookup {
  constructor(private readonly deps: ResultLookupDeps) {}

  async lookup(request: LookupRequest): Promise<Lookup> {
    const { ttlSeconds, scope } = this.deps.settings;
    const { route } = request;
    if (ttlSeconds === 0 || route.version === undefined) return {};
    const terms: ResultCacheTerms = {
      scope: scopeOf(scope, request.owner),
      definition: modelFingerprint(route.model),
      ttlSeconds,
    };
    if (request.bypass) {
      this.deps.onLookup?.(request, 'bypass');
      return { terms };
    }
    let hit: CachedResult | undefined;
    try {
      hit = await this.deps.cache.get({
        scope: terms.scope,
        model: route.model.name,
        definition: terms.definition,
        backend: route.backend,
        version: route.version,
        image: request.imageKey,
        params: request.params,
      });
    } catch (err) {
      this.deps.logger.warn(
        { requestId: request.requestId, err: (err as Error).message },
        'result cache lookup failed; running the model',
      );
    }
    this.deps.onLookup?.(request, hit ? 'hit' : 'miss');
    return hit ? { terms, hit } : { terms };
  }
}
