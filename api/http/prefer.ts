/** The preferences of an RFC 7240 `Prefer` header that this API honours. */
export interface Preferences {
  respondAsync: boolean;
  /** Seconds, as the client asked (not yet capped). */
  wait?: number;
}

/**
 * Parses `Prefer: respond-async, wait=10`. Tokens are case-insensitive; unknown preferences and
 * malformed values are ignored, as RFC 7240 asks of servers.
 */
export function parsePrefer(header: string | string[] | undefined): Preferences {
  const preferences: Preferences = { respondAsync: false };
  const values = Array.isArray(header) ? header : header ? [header] : [];
  for (const item of values.flatMap((v) => v.split(','))) {
    const [token, rawValue] = item
      .split(';')[0]!
      .split('=')
      .map((s) => s.trim());
    const name = token?.toLowerCase();
    const value = rawValue?.replace(/^"(.*)"$/, '$1');
    if (name === 'respond-async') preferences.respondAsync = true;
    if (name === 'wait' && value && /^\d{1,9}$/.test(value)) preferences.wait = Number(value);
  }
  return preferences;
}
