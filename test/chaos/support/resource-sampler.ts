import { readFile } from 'node:fs/promises';
import type { ServiceProcess } from '../../support/processes.js';
import { parsePrometheusText, sampleValue } from '../../support/prometheus-text.js';

/** One process's memory at one moment, in MB. */
export interface MemorySample {
  at: number;
  rssMb: number;
  heapMb: number;
}

/** Every process's samples, and Redis's, over a run. */
export interface MemoryTrace {
  processes: Record<string, MemorySample[]>;
  redis: { at: number; usedMb: number }[];
}

export interface SampledProcess {
  name: string;
  process: ServiceProcess;
  /** Its Prometheus endpoint, for `nodejs_heap_size_used_bytes`. */
  metricsUrl: string;
  headers?: Record<string, string>;
}

const MB = 1024 * 1024;

/** Samples RSS (from /proc) and V8 heap (from /metrics) of each process, and Redis's used memory. */
export class ResourceSampler {
  readonly trace: MemoryTrace = { processes: {}, redis: [] };
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly processes: SampledProcess[],
    private readonly redisMemory: () => Promise<number>,
  ) {}

  start(everyMs: number): void {
    const tick = () => {
      void this.sample().finally(() => {
        if (this.timer) this.timer = setTimeout(tick, everyMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async sample(): Promise<void> {
    const at = Date.now();
    await Promise.all([
      ...this.processes.map(async ({ name, process, metricsUrl, headers }) => {
        const [rss, heap] = await Promise.all([
          rssBytes(process.pid),
          heapBytes(metricsUrl, headers),
        ]);
        if (rss === undefined || heap === undefined) return;
        const samples = this.trace.processes[name] ?? [];
        samples.push({ at, rssMb: rss / MB, heapMb: heap / MB });
        this.trace.processes[name] = samples;
      }),
      this.redisMemory().then(
        (used) => void this.trace.redis.push({ at, usedMb: used / MB }),
        () => undefined,
      ),
    ]);
  }
}

/** Least-squares slope of `value` over time, in units per minute. */
export function slopePerMinute<T extends { at: number }>(
  samples: T[],
  value: (sample: T) => number,
): number {
  if (samples.length < 2) return 0;
  const xs = samples.map((s) => s.at / 60_000);
  const ys = samples.map(value);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function rssBytes(pid: number | undefined): Promise<number | undefined> {
  if (!pid) return undefined;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : undefined;
}

async function heapBytes(
  url: string,
  headers?: Record<string, string>,
): Promise<number | undefined> {
  const response = await fetch(url, {
    ...(headers ? { headers } : {}),
    signal: AbortSignal.timeout(5000),
  }).catch(() => undefined);
  if (!response?.ok) return undefined;
  return sampleValue(parsePrometheusText(await response.text()), 'nodejs_heap_size_used_bytes');
}
