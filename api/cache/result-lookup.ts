import {
  type CachedResult,
  type ResultCache,
  type ResultCacheOutcome,
  type ResultCacheTerms,
  scopeOf,
} from '../../shared/cache/result-cache.js';
import type { Config } from '../../shared/config/config.js';
import type { JobSpec } from '../../shared/jobs/job-spec.js';
import type { Logger } from '../../shared/logging/logger.js';
import { modelFingerprint } from '../../shared/models/model-fingerprint.js';
import type { Route } from '../routing/router.js';

export interface ResultLookupDeps {
  cache: ResultCache;
  logger: Logger;
  /** Called once per request the cache applies to, with what it did (metrics and /stats). */
  onLookup?: (request: LookupRequest, outcome: ResultCacheOutcome) => void;
}

/** A request as the cache sees it: its job's spec, and the route it was given. */
export interface LookupRequest {
  spec: JobSpec;
  route: Route;
  /** `Cache-Control: no-cache` or `no-store`: do not answer from the cache, but refresh it. */
  bypass: boolean;
}

/**
 * What a job must carry for its worker to remember its result (part of its spec); `undefined`:
 * the cache does not apply to it (off, or no version can be resolved: no worker reports one). The
 * address is the one the worker will file the answer under (see ResultCacheWriter): the owner (or
 * `global`), model, registry fingerprint, the route's backend, the version that backend serves now
 * (requested, or its newest), the image's hash and `top_k`/`threshold`.
 */
export function resultCacheTerms(
  settings: Config['resultCache'],
  route: Route,
  owner: string,
): ResultCacheTerms | undefined {
  if (settings.ttlSeconds === 0 || route.version === undefined) return undefined;
  return {
    scope: scopeOf(settings.scope, owner),
    definition: modelFingerprint(route.model),
    ttlSeconds: settings.ttlSeconds,
  };
}

/**
 * The API side of the result cache: looks up the answer to a request its terms apply to. A lookup
 * that fails (Redis slow or down) counts as a miss: the request runs as if there were no cache.
 */
export class ResultLookup {
  constructor(private readonly deps: ResultLookupDeps) {}

  /** The answer, found for exactly this request; `undefined` for a miss, a bypass, or no terms. */
  async lookup(request: LookupRequest): Promise<CachedResult | undefined> {
    const { spec, route } = request;
    const terms = spec.resultCache;
    if (!terms || route.version === undefined) return undefined;
    if (request.bypass) {
      this.deps.onLookup?.(request, 'bypass');
      return undefined;
    }
    let hit: CachedResult | undefined;
    try {
      hit = await this.deps.cache.get({
        scope: terms.scope,
        model: spec.model,
        definition: terms.definition,
        backend: route.backend,
        version: route.version,
        image: spec.imageKey,
        params: spec.params,
      });
    } catch (err) {
      this.deps.logger.warn(
        { requestId: spec.requestId, err: (err as Error).message },
        'result cache lookup failed; running the model',
      );
    }
    this.deps.onLookup?.(request, hit ? 'hit' : 'miss');
    return hit;
  }
}
