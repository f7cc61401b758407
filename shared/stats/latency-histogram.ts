/**
 * A log-scale latency histogram small enough to keep in a Redis hash: bucket `i` holds durations in
 * (MIN_MS * GROWTH^(i-1), MIN_MS * GROWTH^i], bucket 0 everything up to MIN_MS. With a growth of
 * 10% per bucket a percentile read from it is within 10% of the exact one, whatever the traffic,
 * and histograms of several minutes or models merge by adding counts.
 */
const MIN_MS = 1;
const GROWTH = 1.1;
const LOG_GROWTH = Math.log(GROWTH);
/** 1.1^160 ms is over an hour: everything longer shares the last bucket. */
const LAST_BUCKET = 160;

export type LatencyCounts = Map<number, number>;

export function latencyBucket(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  return Math.min(LAST_BUCKET, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH - 1e-9));
}

const upperBound = (bucket: number) => MIN_MS * GROWTH ** bucket;
const lowerBound = (bucket: number) => (bucket === 0 ? 0 : upperBound(bucket - 1));

export function addLatencyCounts(into: LatencyCounts, from: LatencyCounts): void {
  for (const [bucket, count] of from) into.set(bucket, (into.get(bucket) ?? 0) + count);
}

/**
 * The `q` quantile (0-1) in milliseconds, interpolated linearly inside its bucket (as Prometheus'
 * `histogram_quantile` does); null for an empty histogram.
 */
export function latencyQuantile(counts: LatencyCounts, q: number): number | null {
  let total = 0;
  for (const count of counts.values()) total += count;
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (const bucket of [...counts.keys()].sort((a, b) => a - b)) {
    const count = counts.get(bucket) ?? 0;
    if (count > 0 && seen + count >= rank) {
      const low = lowerBound(bucket);
      return low + (upperBound(bucket) - low) * Math.max(0, (rank - seen) / count);
    }
    seen += count;
  }
  return upperBound(LAST_BUCKET);
}
