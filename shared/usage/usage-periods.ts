/**
 * The calendar periods usage and quotas are counted in: UTC days and months, named as ISO 8601
 * dates (`2026-11-30`) and months (`2026-11`), so they sort as text and read the same everywhere.
 */

const DAY_MS = 86_400_000;

/** The UTC day of an instant, `YYYY-MM-DD`. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The UTC month of an instant, `YYYY-MM`. */
export function utcMonth(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7);
}

/** The first instant of the UTC day after `ms`'s. */
export function nextUtcDay(ms: number): number {
  return (Math.floor(ms / DAY_MS) + 1) * DAY_MS;
}

/** The first instant of the UTC month after `ms`'s. */
export function nextUtcMonth(ms: number): number {
  const at = new Date(ms);
  return Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1);
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Midnight UTC of a `YYYY-MM-DD` date, or undefined when it is not a real date. */
export function parseUtcDay(text: string): number | undefined {
  const match = DATE.exec(text);
  if (!match) return undefined;
  const ms = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return utcDay(ms) === text ? ms : undefined;
}

/** Every UTC day from `from` to `to`, both included (midnights, as from {@link parseUtcDay}). */
export function daysBetween(from: number, to: number): string[] {
  const days: string[] = [];
  for (let ms = from; ms <= to; ms += DAY_MS) days.push(utcDay(ms));
  return days;
}
