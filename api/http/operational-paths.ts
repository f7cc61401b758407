/**
 * Probes and scrapes (`/health…`, `/metrics`): served whatever the load, never rate limited,
 * not logged per request, traced or counted in the traffic they measure.
 */
const OPERATIONAL = /^\/(health|metrics)(\/|\?|$)/;

/** Whether a request URL (path and query) is a probe or a scrape. */
export function isOperationalPath(url: string): boolean {
  return OPERATIONAL.test(url);
}
