export interface SharedCheckOptions {
  /** How long a settled answer (success or failure) is reused, in milliseconds. */
  reuseMs: number;
  /** @defaultValue Date.now */
  now?: () => number;
}

/**
 * A dependency check that any number of callers share: at most one runs at a time, and its answer
 * is reused for `reuseMs` after it settles. Health probes are public and exempt from rate limits
 * and shedding, so without this a flood of them becomes a flood of S3 HeadBucket calls on the
 * client that uploads use.
 */
export function sharedCheck(
  check: () => Promise<unknown>,
  options: SharedCheckOptions,
): () => Promise<unknown> {
  const now = options.now ?? Date.now;
  let current: Promise<unknown> | undefined;
  /** When `current` settled; undefined while it runs. */
  let settledAt: number | undefined;
  return () => {
    const fresh = settledAt === undefined || now() - settledAt < options.reuseMs;
    if (current && fresh) return current;
    settledAt = undefined;
    const run = (async () => check())();
    const settled = () => {
      if (current === run) settledAt = now();
    };
    run.then(settled, settled);
    current = run;
    return run;
  };
}
