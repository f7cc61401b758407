const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const SECONDS = /^\d{1,9}(\.\d{1,3})?$/;
const DURATION = /^(\d{1,9}(\.\d{1,3})?(ms|s|m|h))+$/;
const DURATION_PART = /(\d{1,9}(?:\.\d{1,3})?)(ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * The furthest a deadline may lie ahead: 30 days. A job that must start within a month can say
 * so; anything further is a mistake (or a probe for times past what a date holds).
 */
export const MAX_DEADLINE_AHEAD_MS = 30 * 24 * 3_600_000;

function withinReach(at: number, now: number, what: string): number | string {
  return at - now <= MAX_DEADLINE_AHEAD_MS
    ? at
    : `${what} must lie at most 30 days ahead (${MAX_DEADLINE_AHEAD_MS / 1000} s)`;
}

/**
 * The `deadline` field: an RFC 3339 time (`2026-01-01T12:00:00Z`) or a number of seconds from
 * now. Returns epoch ms, or a message saying what is wrong.
 */
export function parseDeadlineField(value: string, now = Date.now()): number | string {
  const text = value.trim();
  if (SECONDS.test(text))
    return withinReach(now + Math.round(Number(text) * 1000), now, 'Field "deadline"');
  if (RFC3339.test(text)) {
    const at = Date.parse(text);
    if (Number.isFinite(at)) return withinReach(at, now, 'Field "deadline"');
  }
  return 'Field "deadline" must be an RFC 3339 time (e.g. 2026-01-01T12:00:00Z) or a number of seconds';
}

/**
 * Replicate's `Cancel-After` header: a duration such as `30s`, `5m`, `1h30m`, `1500ms`, or a bare
 * number of seconds. Returns epoch ms, or a message saying what is wrong.
 */
export function parseCancelAfter(value: string, now = Date.now()): number | string {
  const text = value.trim().toLowerCase();
  if (SECONDS.test(text)) {
    return withinReach(now + Math.round(Number(text) * 1000), now, 'Header Cancel-After');
  }
  if (DURATION.test(text)) {
    let ms = 0;
    for (const [, amount, unit] of text.matchAll(DURATION_PART)) {
      ms += Number(amount) * UNIT_MS[unit!]!;
    }
    return withinReach(now + Math.round(ms), now, 'Header Cancel-After');
  }
  return 'Header Cancel-After must be a duration such as 30s, 5m, 1h30m or 1500ms';
}
