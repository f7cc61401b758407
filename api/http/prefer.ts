/** The preferences of an RFC 7240 `Prefer` header that this API honours. */
export interface Preferences {
  respondAsync: boolean;
  /** Seconds, as the client asked (not yet capped). */
  wait?: number;
}

/**
 * Parses `Prefer: respond-async, wait=10`. Tokens are case-insensitive; unknown preferences and
 * malformed values are ignored, and of a preference given twice only the first counts, as RFC 7240
 * asks of servers.
 */
export function parsePrefer(header: string | string[] | undefined): Preferences {
  const preferences: Preferences = { respondAsync: false };
  const values = Array.isArray(header) ? header : header ? [header] : [];
  const seen = new Set<string>();
  for (const item of values.flatMap((v) => v.split(','))) {
    const [token, rawValue] = item
      .split(';')[0]!
      .split('=')
      .map((s) => s.trim());
    const name = token?.toLowerCase();
    if (!name || seen.has(name)) continue;
    seen.add(name);
    const value = rawValue?.replace(/^"(.*)"$/, '$1');
    if (name === 'respond-async') preferences.respondAsync = true;
    if (name === 'wait' && value && /^\d{1,9}$/.test(value)) preferences.wait = Number(value);
  }
  return preferences;
}

/** How a request to /predict is answered, from its preferences and the configured waits. */
export interface WaitPlan {
  /** How long the request waits for its job; 0: it answers 202 at once. */
  waitMs: number;
  /** A request that does not wait is an async submission: queued with the async priority. */
  mode: 'sync' | 'async';
  /** The Preference-Applied header, when a preference was honoured. */
  applied?: string;
}

/**
 * `respond-async` alone: no wait. `wait=N` (with or without respond-async): up to N seconds, capped.
 * Neither: the default wait.
 */
export function planWait(
  preferences: Preferences,
  sync: { defaultWaitMs: number; maxWaitMs: number },
): WaitPlan {
  const asked =
    preferences.wait !== undefined
      ? preferences.wait * 1000
      : preferences.respondAsync
        ? 0
        : sync.defaultWaitMs;
  const waitMs = Math.min(asked, sync.maxWaitMs);
  const applied = [
    ...(preferences.respondAsync ? ['respond-async'] : []),
    ...(preferences.wait !== undefined ? [`wait=${Math.round(waitMs / 1000)}`] : []),
  ].join(', ');
  return { waitMs, mode: waitMs > 0 ? 'sync' : 'async', applied: applied || undefined };
}
