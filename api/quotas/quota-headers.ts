import type { PolicyStanding } from './quota-counters.js';

/**
 * The quota's standing as the IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers,
 * structured-field lists, a policy per quota): `RateLimit-Policy: "images_per_day";q=1000;w=86400`
 * and `RateLimit: "images_per_day";r=12;t=3600`. The per-window rate limit answers with the older
 * `RateLimit-Limit`/`-Remaining`/`-Reset` fields, so the two never share a header name.
 */
export function quotaHeaders(standing: readonly PolicyStanding[], now = Date.now()) {
  if (standing.length === 0) return {};
  return {
    'ratelimit-policy': standing
      .map((s) => `"${s.policy}";q=${s.limit};w=${s.windowSeconds}`)
      .join(', '),
    ratelimit: standing
      .map((s) => `"${s.policy}";r=${s.remaining};t=${secondsUntil(s.resetsAt, now)}`)
      .join(', '),
  };
}

/** Whole seconds from `now` to `at`, at least 1. */
export function secondsUntil(at: number, now = Date.now()): number {
  return Math.max(1, Math.ceil((at - now) / 1000));
}
