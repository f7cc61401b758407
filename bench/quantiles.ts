/** Nearest-rank quantile of values sorted ascending; 0 for none. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The median of the values that are numbers; undefined when there are none. */
export function median(values: readonly (number | undefined)[]): number | undefined {
  const present = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (present.length === 0) return undefined;
  present.sort((a, b) => a - b);
  const mid = present.length >> 1;
  return present.length % 2 ? present[mid]! : (present[mid - 1]! + present[mid]!) / 2;
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Rounded for reports: 2 decimals below 10, 1 below 100, none above. */
export function tidy(x: number): number {
  const digits = Math.abs(x) < 10 ? 100 : Math.abs(x) < 100 ? 10 : 1;
  return Math.round(x * digits) / digits;
}
