/**
 * CPU profiles of the gateway under the predict benchmark's load: starts the API and an ONNX worker
 * as `npm run bench` does, each under `node --cpu-prof`, puts one contender's load on them (after a
 * short unrecorded warm-up in the same processes), stops both processes and leaves their
 * `.cpuprofile` files in the output folder (open them in Chrome's DevTools, or summarise them).
 * Also prints the Redis commands per request, by command, from `INFO commandstats` around the
 * measured window (the Redis is shared: run it on a quiet one).
 *
 *   --contender gateway  sync `POST /predict` from a closed loop of N clients for S seconds
 *   --contender async    a burst of `--jobs` `POST /jobs` from N clients, as `npm run bench`'s
 *                        async contender sends it, the worker running; the window is the burst,
 *                        and the worker's figures also cover the drain after it
 *
 * Prints each process's main-thread self time in the measured window (start-up left out), top
 * entries by package and by function, in ms and ms per request.
 *
 *   npm run bench:profile -- --concurrency 64 --seconds 10 --images text-line [--top 25]
 *   npm run bench:profile -- --contender async --jobs 4000 --images photo
 *
 * `--paused` pauses the queue for an async burst, so the commands in its window are the API's
 * alone; `--root DIR` profiles the gateway of another source tree (as bench:ab's `--base`).
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { loadConfig } from '../shared/config/config.js';
import { QueueName } from '../shared/queues/queues.js';
import { integer, names, positive } from './bench-options.js';
import { gatewayAsync } from './contenders/gateway-async.contender.js';
import { gatewaySync } from './contenders/gateway-sync.contender.js';
import { monotonicMicros, selfTime, selfTimeTable } from './cpu-profile.js';
import { startGatewayStack } from './gateway-stack.js';
import { IMAGE_NAMES, loadBenchImage, UniqueJpegs } from './images.js';
import { burst, closedLoop } from './load-generator.js';
import { runBenchmark } from './own-process.js';
import type { Teardown } from './teardown.js';

/** CPU ms (utime + stime) of each thread of `pid`, by thread name (`node`, `libuv-worker`, ...). */
function threadCpuMs(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime in clock ticks (100 per second on Linux).
      const ms = (Number(fields[11]) + Number(fields[12])) * 10;
      const key = tid === String(pid) ? 'main thread' : name;
      byName.set(key, (byName.get(key) ?? 0) + ms);
    } catch {
      // The thread ended in between.
    }
  }
  return byName;
}

/** `INFO commandstats` as calls per command. */
async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const calls = new Map<string, number>();
  for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_(\S+):calls=(\d+)/gm)) {
    calls.set(match[1]!, Number(match[2]));
  }
  return calls;
}

/** The contenders this script can profile, as `npm run bench --only` names them. */
const PROFILED = ['gateway', 'async'] as const;

/** What the load came to: the answered requests (sorted latencies) and the measured window. */
interface Load {
  latenciesMs: number[];
  errors: number;
  seconds: number;
}

async function main(teardown: Teardown): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      contender: { type: 'string', default: 'gateway' },
      concurrency: { type: 'string', default: '64' },
      seconds: { type: 'string', default: '10' },
      /** POST /jobs in the async contender's measured burst. */
      jobs: { type: 'string', default: '4000' },
      images: { type: 'string', default: 'text-line' },
      out: { type: 'string', default: 'bench/results/profiles' },
      top: { type: 'string', default: '25' },
      /** More Node flags for both processes (e.g. a preload that samples the heap on SIGUSR2). */
      'node-arg': { type: 'string', multiple: true, default: [] },
      /** Send SIGUSR2 to both processes as the measured window begins. */
      'signal-window': { type: 'boolean', default: false },
      /** Async: the queue is paused during the measured burst, so its commands are the API's alone. */
      paused: { type: 'boolean', default: false },
      /** Profile the gateway of another source tree (as bench:ab's --base). */
      root: { type: 'string' },
    },
  });
  const [contenderName] = names('contender', values.contender, PROFILED);
  const concurrency = integer('concurrency', values.concurrency);
  const seconds = positive('seconds', values.seconds);
  const jobs = integer('jobs', values.jobs);
  const top = integer('top', values.top);
  const [imageName] = names('images', values.images, IMAGE_NAMES);
  const out = resolve(values.out, `${contenderName}-${imageName}-c${concurrency}-${Date.now()}`);
  mkdirSync(out, { recursive: true });

  const config = loadConfig(process.env);
  const stats = new Redis(config.redis.url);
  teardown.add('stats Redis connection', () => void stats.disconnect());
  const logDir = join(out, 'logs');
  const stack = await startGatewayStack(
    { config, logDir, teardown },
    {
      nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${out}`, ...values['node-arg']],
      root: values.root && resolve(values.root),
    },
  );
  const contender =
    contenderName === 'async'
      ? gatewayAsync(stack, { config, logDir, teardown })
      : gatewaySync(stack);
  const image = await loadBenchImage(imageName!);
  const uniques = new UniqueJpegs();
  let sent = 0;
  const send = () => {
    sent++;
    return contender.send(uniques.next(image.jpeg));
  };
  const pids = [stack.api.pid, stack.worker.pid] as const;
  let before = new Map<string, number>();
  let after = new Map<string, number>();
  let requestsBefore = 0;
  let requestsAfter = 0;
  // The API's window is the load's; the worker's runs on through the drain of an async burst.
  const windows = [
    { from: 0, to: 0 },
    { from: 0, to: 0 },
  ];
  let threadsBefore: Map<string, number>[] = [];
  const threadsAfter: Map<string, number>[] = [];
  const hooks = {
    begin: async () => {
      before = await commandCalls(stats);
      requestsBefore = sent;
      windows[0]!.from = windows[1]!.from = monotonicMicros();
      threadsBefore = pids.map(threadCpuMs);
      if (values['signal-window']) for (const pid of pids) process.kill(pid, 'SIGUSR2');
    },
    end: async () => {
      windows[0]!.to = monotonicMicros();
      threadsAfter[0] = threadCpuMs(stack.api.pid);
      requestsAfter = sent;
      if (contender.load === 'closed-loop') {
        windows[1]!.to = windows[0]!.to;
        threadsAfter[1] = threadCpuMs(stack.worker.pid);
        after = await commandCalls(stats);
      }
    },
  };
  let load: Load;
  if (contender.load === 'closed-loop') {
    load = await closedLoop({
      concurrency,
      warmupMs: 2000,
      durationMs: seconds * 1000,
      send,
      hooks,
    });
  } else {
    const unmeasured = { begin: async () => undefined, end: async () => undefined };
    await burst({ total: Math.min(jobs, 8 * concurrency), concurrency, send, hooks: unmeasured });
    await contender.settle();
    const queue = new Queue(QueueName.InferenceOnnx, { connection: stats, prefix: stack.prefix });
    teardown.add('paused queue', () => queue.close());
    if (values.paused) await queue.pause();
    load = await burst({ total: jobs, concurrency, send, hooks });
    const accepted = await commandCalls(stats);
    if (values.paused) await queue.resume();
    await contender.settle();
    windows[1]!.to = monotonicMicros();
    threadsAfter[1] = threadCpuMs(stack.worker.pid);
    after = await commandCalls(stats);
    printCommands('Redis commands per accepted job, in the burst', before, accepted, jobs);
  }
  const n = load.latenciesMs.length;
  const p50 = load.latenciesMs[Math.floor(n / 2)] ?? Number.NaN;
  const unit = contender.load === 'burst' ? 'jobs/s' : 'req/s';
  console.log(
    `${contenderName} ${imageName} c=${concurrency}: ${(n / load.seconds).toFixed(1)} ${unit}, p50 ${p50.toFixed(1)} ms, ${load.errors} errors`,
  );
  printCommands(
    contender.load === 'burst'
      ? 'Redis commands per job, burst and drain'
      : 'Redis commands per request',
    before,
    after,
    Math.max(1, requestsAfter - requestsBefore),
  );

  (['API', 'worker'] as const).forEach((role, i) => {
    const rows = [...threadsAfter[i]!]
      .map(([name, ms]) => [name, (ms - (threadsBefore[i]!.get(name) ?? 0)) / n] as const)
      .filter(([, perRequest]) => perRequest > 0.005)
      .sort((a, b) => b[1] - a[1]);
    const total = rows.reduce((sum, [, perRequest]) => sum + perRequest, 0);
    console.log(`${role} CPU per request by thread: ${total.toFixed(2)} ms`);
    for (const [name, perRequest] of rows)
      console.log(`  ${name.padEnd(24)} ${perRequest.toFixed(3)}`);
  });

  await Promise.all([stack.api.stop(), stack.worker.stop()]);
  const profiles = readdirSync(out).filter((file) => file.endsWith('.cpuprofile'));
  (['API', 'worker'] as const).forEach((role, i) => {
    // CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile; thread 0 is the main thread.
    const main = profiles.find(
      (file) => file.split('.')[3] === String(pids[i]) && file.split('.')[4] === '0',
    );
    if (!main) return;
    console.log(`\n${role} main thread (${join(out, main)}), measured window only:`);
    console.log(selfTimeTable(selfTime(join(out, main), windows[i]!), top, n));
  });
}

/** The Redis commands between two `INFO commandstats` readings, per request, by command. */
function printCommands(
  title: string,
  before: Map<string, number>,
  after: Map<string, number>,
  requests: number,
): void {
  const rows = [...after]
    .map(([name, calls]) => [name, (calls - (before.get(name) ?? 0)) / requests] as const)
    .filter(([, perRequest]) => perRequest > 0.01)
    .sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((sum, [, perRequest]) => sum + perRequest, 0);
  console.log(`${title} (shared Redis: others' commands included): ${total.toFixed(1)}`);
  for (const [name, perRequest] of rows)
    console.log(`  ${name.padEnd(24)} ${perRequest.toFixed(2)}`);
}

await runBenchmark(fileURLToPath(import.meta.url), main);
