import { RESULT_CACHE_OUTCOMES, type ResultCacheOutcome } from '../cache/result-cache.js';
import {
  type BackendLabel,
  backendLabel,
  type ModelLabeler,
  modelLabeler,
} from '../metrics/labels.js';
import type { RedisClient } from '../redis/redis.js';
import {
  addLatencyCounts,
  type LatencyCounts,
  latencyBucket,
  latencyQuantile,
} from './latency-histogram.js';

export type JobOutcome = 'completed' | 'failed' | 'retried';
const JOB_OUTCOMES: readonly JobOutcome[] = ['completed', 'failed', 'retried'];

export interface RequestOutcome {
  /** Who sent it: an API key's id, or the anonymous tenant. */
  tenant: string;
  backend: string | undefined;
  model: string | undefined;
  status: number;
  /** The request's duration, for a sync request that answered with the job's result. */
  latencyMs?: number;
}

export interface JobEnd {
  /** Whose job it is; undefined: counted in the overall figures only. */
  tenant: string | undefined;
  backend: string;
  model: string;
  outcome: JobOutcome;
}

/** What the result cache did for one request to a model. */
export interface CacheLookup {
  tenant: string;
  backend: string | undefined;
  model: string;
  outcome: ResultCacheOutcome;
}

export interface StatsStoreOptions {
  /** The registered model names; any other name is counted as `unknown`. */
  models: Iterable<string>;
  /** How far back the windowed numbers (rates, percentiles) look, in seconds; whole minutes. */
  windowSeconds: number;
  /**
   * The clock of minute buckets and of error reports.
   * @defaultValue Date.now
   */
  now?: () => number;
  /**
   * Counts are added up in memory and written in one pipeline this often; 0 writes each record
   * at once. Batching keeps a Redis write off every request and job (the numbers lag by at most
   * this much).
   * @defaultValue 0
   */
  flushIntervalMs?: number;
  /**
   * A write failed (its counts are lost; the next one goes on). Called at most once per
   * `errorEveryMs`, so an outage does not flood the log, with how many writes failed since the
   * last call (this one included): what the silent ones cost.
   */
  onFlushError?: (err: unknown, failedWrites: number) => void;
  /** @defaultValue 10000 */
  errorEveryMs?: number;
}

/** Counts of one backend or model: requests by status and jobs by outcome. */
export interface Counts {
  requests: number;
  errors: number;
  by_status: Record<string, number>;
  jobs: Record<JobOutcome, number>;
}

/** Requests by what the result cache did for them; `hit_rate`: hits among all of them. */
export interface ResultCacheCounts {
  hits: number;
  misses: number;
  bypasses: number;
  hit_rate: number;
}

export interface LatencySummary {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface WindowCounts {
  requests: number;
  requests_per_second: number;
  /** Share of requests answered with a problem (status >= 400). */
  error_rate: number;
  /** Share of requests answered with a server error (status >= 500). */
  server_error_rate: number;
  /** Sync requests that answered with the job's result, in milliseconds. */
  latency_ms: LatencySummary;
  jobs: Record<JobOutcome, number>;
}

/**
 * Whose figures: everyone's (the overall view), or one tenant's. Tenants are bounded by their
 * source: the configured API key ids and the anonymous tenant.
 */
export interface StatsScope {
  tenant?: string;
}

export interface StatsSnapshot {
  /** When this Redis started counting (first API or worker start on this prefix). */
  since: string | null;
  totals: Counts & {
    backends: Record<string, Counts & { models: Record<string, Counts> }>;
    result_cache: ResultCacheCounts & { models: Record<string, ResultCacheCounts> };
  };
  window: WindowCounts & {
    seconds: number;
    models: Record<string, WindowCounts>;
    result_cache: ResultCacheCounts & { models: Record<string, ResultCacheCounts> };
  };
}

const MINUTE_MS = 60_000;

/**
 * Request and job counts in Redis, shared by every API and worker process, so any instance answers
 * GET /stats with the same numbers. Each scope (everyone's, and each tenant's) has its totals in one
 * hash and its recent activity in one hash per minute (expiring after the window) holding counts
 * and a latency histogram. Recording adds to counts in memory, written in one pipelined round trip
 * per `flushIntervalMs` (or per record); reading one scope costs one round trip for its totals and
 * the window's minutes, after writing this process's counts.
 *
 * Keys: `stats:total` and `stats:minute:<minute>` for everyone, `stats:tenant:<id>:total` and
 * `stats:tenant:<id>:minute:<minute>` for one tenant. Fields: `r|<backend>|<model>|<status>`
 * requests, `j|<backend>|<model>|<outcome>` jobs, `l|<backend>|<model>|<bucket>` latencies,
 * `c|<backend>|<model>|<outcome>` result cache lookups. Label values are bounded as for the metrics.
 */
export class StatsStore {
  private readonly model: ModelLabeler;
  private readonly minutes: number;
  private readonly now: () => number;
  private readonly flushIntervalMs: number;
  /** Counts not written yet: Redis key -> hash field -> increment, and whether the key expires. */
  private pending = new Map<string, { fields: Map<string, number>; expires: boolean }>();
  private timer: NodeJS.Timeout | undefined;
  private lastError = Number.NEGATIVE_INFINITY;
  /** Writes that failed since `onFlushError` was last called. */
  private failedWrites = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly options: StatsStoreOptions,
  ) {
    if (!(options.windowSeconds >= 60)) throw new RangeError('windowSeconds must be at least 60');
    this.model = modelLabeler(options.models);
    this.minutes = Math.ceil(options.windowSeconds / 60);
    this.now = options.now ?? Date.now;
    this.flushIntervalMs = options.flushIntervalMs ?? 0;
    if (this.flushIntervalMs < 0) throw new RangeError('flushIntervalMs must be >= 0');
  }

  /** Where a scope's counts live: everyone's under `stats`, a tenant's under its own name. */
  private base(tenant: string | undefined): string {
    return tenant === undefined ? `${this.prefix}:stats` : `${this.prefix}:stats:tenant:${tenant}`;
  }

  /** Marks when counting began, once per prefix. */
  async init(): Promise<void> {
    await this.redis.set(`${this.prefix}:stats:since`, String(this.now()), 'NX');
  }

  /** Counts a request; never throws (a failed write goes to `onFlushError`). */
  recordRequest(outcome: RequestOutcome): void {
    const backend = backendLabel(outcome.backend);
    const model = this.model(outcome.model);
    this.count(outcome.tenant, `r|${backend}|${model}|${outcome.status}`);
    if (outcome.latencyMs !== undefined) {
      this.count(outcome.tenant, `l|${backend}|${model}|${latencyBucket(outcome.latencyMs)}`, {
        windowOnly: true,
      });
    }
    this.recorded();
  }

  /** Counts a job's outcome; never throws (a failed write goes to `onFlushError`). */
  recordJob(end: JobEnd): void {
    this.count(
      end.tenant,
      `j|${backendLabel(end.backend)}|${this.model(end.model)}|${end.outcome}`,
    );
    this.recorded();
  }

  /** Counts what the result cache did for a request; never throws. */
  recordCacheLookup(lookup: CacheLookup): void {
    const field = `c|${backendLabel(lookup.backend)}|${this.model(lookup.model)}|${lookup.outcome}`;
    this.count(lookup.tenant, field);
    this.recorded();
  }

  /** Writes the counts held in memory, in one pipeline. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const pipeline = this.redis.pipeline();
    for (const [key, { fields, expires }] of batch) {
      for (const [field, n] of fields) pipeline.hincrby(key, field, n);
      if (expires) pipeline.expire(key, this.ttlSeconds);
    }
    await exec(pipeline);
  }

  /** Writes what is pending and stops the timer. */
  async close(): Promise<void> {
    await this.flush();
  }

  /**
   * Adds one to a field in everyone's figures and in the tenant's: the totals (unless
   * `windowOnly`) and the current minute.
   */
  private count(tenant: string | undefined, field: string, options = { windowOnly: false }): void {
    const minute = Math.floor(this.now() / MINUTE_MS);
    const scopes = tenant === undefined ? [undefined] : [undefined, tenant];
    for (const scope of scopes) {
      const base = this.base(scope);
      if (!options.windowOnly) this.add(`${base}:total`, field, false);
      this.add(`${base}:minute:${minute}`, field, true);
    }
  }

  private add(key: string, field: string, expires: boolean): void {
    let entry = this.pending.get(key);
    if (!entry) {
      entry = { fields: new Map(), expires };
      this.pending.set(key, entry);
    }
    entry.fields.set(field, (entry.fields.get(field) ?? 0) + 1);
  }

  /** Written now (no batching), or with the next batch. */
  private recorded(): void {
    if (this.flushIntervalMs === 0) {
      this.flush().catch((err: unknown) => this.failed(err));
      return;
    }
    this.timer ??= setTimeout(() => {
      this.flush().catch((err: unknown) => this.failed(err));
    }, this.flushIntervalMs);
    this.timer.unref();
  }

  private failed(err: unknown): void {
    this.failedWrites++;
    const now = this.now();
    if (now - this.lastError < (this.options.errorEveryMs ?? 10_000)) return;
    this.lastError = now;
    this.options.onFlushError?.(err, this.failedWrites);
    this.failedWrites = 0;
  }

  /**
   * A scope's totals since counting began, and its last `windowSeconds` (the current minute
   * included).
   */
  async read(scope: StatsScope = {}): Promise<StatsSnapshot> {
    await this.flush();
    const now = this.now();
    const current = Math.floor(now / MINUTE_MS);
    const base = this.base(scope.tenant);
    const pipeline = this.redis
      .pipeline()
      .get(`${this.prefix}:stats:since`)
      .hgetall(`${base}:total`);
    for (let m = current - this.minutes + 1; m <= current; m++) {
      pipeline.hgetall(`${base}:minute:${m}`);
    }
    const [since, totalFields, ...minuteFields] = await exec(pipeline);

    const window = new Tally();
    for (const fields of minuteFields) window.add(fields as Record<string, string>);
    // The window runs from the start of its oldest minute to now.
    const seconds = (now - (current - this.minutes + 1) * MINUTE_MS) / 1000;
    const totals = new Tally();
    totals.add(totalFields as Record<string, string>);

    return {
      since: since ? new Date(Number(since)).toISOString() : null,
      totals: { ...totals.counts(), result_cache: totals.cacheCounts() },
      window: {
        seconds: Math.round(seconds),
        ...window.windowCounts(seconds),
        result_cache: window.cacheCounts(),
      },
    };
  }

  /** Minute hashes outlive the window a little, so a read never finds one half expired. */
  private get ttlSeconds(): number {
    return this.minutes * 60 + 120;
  }
}

async function exec(pipeline: ReturnType<RedisClient['pipeline']>): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? [];
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

/** Counts keyed by backend and model, added up from hash fields. */
class Tally {
  private readonly requests = new Map<string, Map<string, number>>(); // "b|m" -> status -> n
  private readonly jobs = new Map<string, Map<JobOutcome, number>>(); // "b|m" -> outcome -> n
  private readonly latencies = new Map<string, LatencyCounts>(); // "b|m" -> bucket -> n
  private readonly cache = new Map<string, Map<ResultCacheOutcome, number>>(); // model -> outcome -> n

  add(fields: Record<string, string>): void {
    for (const [field, raw] of Object.entries(fields)) {
      const [kind, backend, model, last] = field.split('|');
      const n = Number(raw);
      if (!backend || !model || last === undefined || !Number.isFinite(n)) continue;
      const key = `${backend}|${model}`;
      if (kind === 'r') bump(this.requests, key, last, n);
      else if (kind === 'j' && JOB_OUTCOMES.includes(last as JobOutcome)) {
        bump(this.jobs, key, last as JobOutcome, n);
      } else if (kind === 'l') bump(this.latencies, key, Number(last), n);
      else if (kind === 'c' && RESULT_CACHE_OUTCOMES.includes(last as ResultCacheOutcome)) {
        bump(this.cache, model, last as ResultCacheOutcome, n);
      }
    }
  }

  counts(): Omit<StatsSnapshot['totals'], 'result_cache'> {
    const all = emptyCounts();
    const backends: StatsSnapshot['totals']['backends'] = {};
    for (const key of this.keys()) {
      const [backend, model] = key.split('|') as [BackendLabel, string];
      const own = this.countsOf(key);
      backends[backend] ??= { ...emptyCounts(), models: {} };
      backends[backend].models[model] = own;
      addCounts(backends[backend], own);
      addCounts(all, own);
    }
    return { ...all, backends };
  }

  windowCounts(seconds: number): WindowCounts & { models: Record<string, WindowCounts> } {
    const byModel = new Map<string, { counts: Counts; latency: LatencyCounts }>();
    for (const key of this.keys()) {
      const model = key.split('|')[1]!;
      const entry = byModel.get(model) ?? { counts: emptyCounts(), latency: new Map() };
      addCounts(entry.counts, this.countsOf(key));
      addLatencyCounts(entry.latency, this.latencies.get(key) ?? new Map());
      byModel.set(model, entry);
    }
    const allCounts = emptyCounts();
    const allLatency: LatencyCounts = new Map();
    const models: Record<string, WindowCounts> = {};
    for (const [model, { counts, latency }] of byModel) {
      models[model] = summarise(counts, latency, seconds);
      addCounts(allCounts, counts);
      addLatencyCounts(allLatency, latency);
    }
    return { ...summarise(allCounts, allLatency, seconds), models };
  }

  /** Result cache lookups, in all and per model. */
  cacheCounts(): ResultCacheCounts & { models: Record<string, ResultCacheCounts> } {
    const all = new Map<ResultCacheOutcome, number>();
    const models: Record<string, ResultCacheCounts> = {};
    for (const [model, outcomes] of this.cache) {
      models[model] = cacheSummary(outcomes);
      for (const [outcome, n] of outcomes) all.set(outcome, (all.get(outcome) ?? 0) + n);
    }
    return { ...cacheSummary(all), models };
  }

  private keys(): string[] {
    return [...new Set([...this.requests.keys(), ...this.jobs.keys(), ...this.latencies.keys()])];
  }

  private countsOf(key: string): Counts {
    const counts = emptyCounts();
    for (const [status, n] of this.requests.get(key) ?? []) {
      counts.requests += n;
      if (Number(status) >= 400) counts.errors += n;
      counts.by_status[status] = (counts.by_status[status] ?? 0) + n;
    }
    for (const [outcome, n] of this.jobs.get(key) ?? []) counts.jobs[outcome] += n;
    return counts;
  }
}

function bump<K>(map: Map<string, Map<K, number>>, key: string, inner: K, n: number): void {
  const counts = map.get(key) ?? new Map<K, number>();
  counts.set(inner, (counts.get(inner) ?? 0) + n);
  map.set(key, counts);
}

function cacheSummary(outcomes: ReadonlyMap<ResultCacheOutcome, number>): ResultCacheCounts {
  const hits = outcomes.get('hit') ?? 0;
  const misses = outcomes.get('miss') ?? 0;
  const bypasses = outcomes.get('bypass') ?? 0;
  const lookups = hits + misses + bypasses;
  return { hits, misses, bypasses, hit_rate: lookups === 0 ? 0 : round(hits / lookups, 4) };
}

function emptyCounts(): Counts {
  return { requests: 0, errors: 0, by_status: {}, jobs: { completed: 0, failed: 0, retried: 0 } };
}

function addCounts(into: Counts, from: Counts): void {
  into.requests += from.requests;
  into.errors += from.errors;
  for (const [status, n] of Object.entries(from.by_status)) {
    into.by_status[status] = (into.by_status[status] ?? 0) + n;
  }
  for (const outcome of JOB_OUTCOMES) into.jobs[outcome] += from.jobs[outcome];
}

function summarise(counts: Counts, latency: LatencyCounts, seconds: number): WindowCounts {
  let serverErrors = 0;
  for (const [status, n] of Object.entries(counts.by_status)) {
    if (Number(status) >= 500) serverErrors += n;
  }
  let latencyCount = 0;
  for (const n of latency.values()) latencyCount += n;
  const share = (n: number) => (counts.requests === 0 ? 0 : round(n / counts.requests, 4));
  const ms = (q: number) => {
    const value = latencyQuantile(latency, q);
    return value === null ? null : round(value, 1);
  };
  return {
    requests: counts.requests,
    requests_per_second: seconds > 0 ? round(counts.requests / seconds, 3) : 0,
    error_rate: share(counts.errors),
    server_error_rate: share(serverErrors),
    latency_ms: { count: latencyCount, p50: ms(0.5), p95: ms(0.95), p99: ms(0.99) },
    jobs: { ...counts.jobs },
  };
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
