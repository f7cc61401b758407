import { readFileSync } from 'node:fs';

/** The parts of a V8 `.cpuprofile` (`node --cpu-prof`) read here. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string } }[];
  /** Microseconds on the monotonic clock, the one `process.hrtime` reads. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A window on the monotonic clock, in microseconds (`process.hrtime.bigint() / 1000n`). */
export interface ProfileWindow {
  from: number;
  to: number;
}

export interface SelfTime {
  /** Milliseconds of samples inside the window. */
  totalMs: number;
  /** Self time in ms by package (node_modules) or project file, largest first. */
  byPlace: [string, number][];
  /** Self time in ms by function and where it lives, largest first. */
  byFunction: [string, number][];
}

/** Microseconds on the clock V8's profiler stamps its samples with. */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Self time of a main thread's samples inside `window` (start-up and shutdown left out), by
 * package and by function: where a process under load spends its own time.
 */
export function selfTime(path: string, window: ProfileWindow): SelfTime {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, us: number) =>
    map.set(key, (map.get(key) ?? 0) + us);
  let at = profile.startTime;
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    at += dt;
    if (at < window.from || at > window.to) return;
    total += dt;
    const { functionName, url } = frames.get(id)!;
    const place = placeOf(url) || functionName;
    add(byPlace, place, dt);
    add(byFunction, `${functionName || '(anonymous)'}  ${place}`, dt);
  });
  const sorted = (map: Map<string, number>) =>
    [...map].map(([k, us]): [string, number] => [k, us / 1000]).sort((a, b) => b[1] - a[1]);
  return { totalMs: total / 1000, byPlace: sorted(byPlace), byFunction: sorted(byFunction) };
}

/** `ioredis` for a dependency's file, `api/routes/predict.ts` for the project's, `node:events`. */
function placeOf(url: string): string {
  if (url.includes('node_modules/')) {
    const path = url.split('node_modules/').pop()!;
    return path
      .split('/')
      .slice(0, path.startsWith('@') ? 2 : 1)
      .join('/');
  }
  return url.replace(/^file:\/\/\/?.*?\/(api|workers|shared|bench)\//, '$1/');
}

/** The top `n` rows of a self-time table, with each row's share of the window. */
export function selfTimeTable(time: SelfTime, n: number, perRequest: number): string {
  const rows = (entries: [string, number][]) =>
    entries
      .slice(0, n)
      .map(
        ([name, ms]) =>
          `  ${ms.toFixed(0).padStart(7)} ms ${((100 * ms) / time.totalMs).toFixed(1).padStart(5)}% ${(ms / perRequest).toFixed(3).padStart(7)} ms/req  ${name}`,
      )
      .join('\n');
  return `${time.totalMs.toFixed(0)} ms sampled in the window\n by package or file\n${rows(time.byPlace)}\n by function\n${rows(time.byFunction)}`;
}
