import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** Who spends the CPU of a request: the HTTP server, the queue worker, Redis, the load generator. */
export const ROLES = ['server', 'worker', 'redis', 'client'] as const;
export type Role = (typeof ROLES)[number];

/** The child processes a contender's requests run in, by role (the client is this process). */
export interface RolePids {
  server?: number;
  worker?: number;
}

/** Counters at one instant. */
export interface StatsSnapshot {
  /** CPU time used so far (user + system), ms. */
  cpuMs: Partial<Record<Role, number>>;
  rssBytes: Partial<Record<Role, number>>;
  /** Commands Redis has run so far, all clients, including those inside scripts. */
  redisCommands: number;
  /** INFO calls this probe had made before this snapshot's own. */
  probeCalls: number;
}

/** What a window cost, per request, between two snapshots. */
export interface Usage {
  cpuMsPerRequest: Partial<Record<Role, number>>;
  /** At the end of the window. */
  rssMb: Partial<Record<Role, number>>;
  redisCommandsPerRequest?: number;
  /** Everyone's commands per second, this benchmark's or not: the background when it uses none. */
  redisCommandsPerSecond: number;
}

/** Clock ticks per second of /proc/<pid>/stat's times (100 on Linux). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, all its threads, in ms. */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

function processRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return Number(kb ?? 0) * 1024;
}

function infoField(info: string, name: string): number {
  return Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
}

/**
 * Reads the counters of the processes under test: /proc for the children, `process.cpuUsage()`
 * for this one, `INFO` for Redis (its CPU, memory and per-command call counts). The INFO calls it
 * makes itself are counted so that they can be taken out of the commands of a window.
 */
export class StatsProbe {
  private calls = 0;

  constructor(private readonly redis: Redis) {}

  async snapshot(pids: RolePids): Promise<StatsSnapshot> {
    const probeCalls = this.calls++;
    // One INFO with three sections (Redis 7): one call per snapshot to take out again.
    const info = await this.redis.info('cpu', 'memory', 'commandstats');
    const self = process.cpuUsage();
    const cpuMs: StatsSnapshot['cpuMs'] = {
      client: (self.user + self.system) / 1000,
      redis: (infoField(info, 'used_cpu_sys') + infoField(info, 'used_cpu_user')) * 1000,
    };
    const rssBytes: StatsSnapshot['rssBytes'] = {
      client: process.memoryUsage.rss(),
      redis: infoField(info, 'used_memory_rss'),
    };
    for (const role of ['server', 'worker'] as const) {
      const pid = pids[role];
      if (pid === undefined) continue;
      cpuMs[role] = processCpuMs(pid);
      rssBytes[role] = processRssBytes(pid);
    }
    let redisCommands = 0;
    for (const match of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) {
      redisCommands += Number(match[1]);
    }
    return { cpuMs, rssBytes, redisCommands, probeCalls };
  }
}

/**
 * Per-request cost of a window. Redis figures are charged to the requests only when `usesRedis`:
 * Redis is shared with whatever else runs on the machine.
 */
export function usageBetween(
  before: StatsSnapshot,
  after: StatsSnapshot,
  window: { requests: number; seconds: number; usesRedis: boolean },
): Usage {
  const per = Math.max(1, window.requests);
  const cpuMsPerRequest: Usage['cpuMsPerRequest'] = {};
  const rssMb: Usage['rssMb'] = {};
  for (const role of ROLES) {
    if (role === 'redis' && !window.usesRedis) continue;
    const [start, end] = [before.cpuMs[role], after.cpuMs[role]];
    if (start === undefined || end === undefined) continue;
    cpuMsPerRequest[role] = (end - start) / per;
    rssMb[role] = (after.rssBytes[role] ?? 0) / 2 ** 20;
  }
  const commands =
    after.redisCommands - before.redisCommands - (after.probeCalls - before.probeCalls);
  return {
    cpuMsPerRequest,
    rssMb,
    ...(window.usesRedis ? { redisCommandsPerRequest: commands / per } : {}),
    redisCommandsPerSecond: commands / Math.max(window.seconds, 1e-3),
  };
}
