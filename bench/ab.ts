/**
 * Two gateways side by side, the same load on each in interleaved rounds: this source tree
 * (`head`) and another checkout of the project (`base`, e.g. the commit before a change, made with
 * `git archive <commit> | tar -x -C DIR` and a `node_modules` link). On a shared machine whose
 * load changes by the minute only figures taken in the same minutes compare, so each round runs
 * every phase on both, in alternating order, and the report gives the median over rounds of each
 * round's head/base ratio next to the medians.
 *
 *   npm run bench:ab -- --base /tmp/base --images text-line --concurrency 1,64 --rounds 3
 *   npm run bench:ab -- --base /tmp/base --contender async --async-jobs 2000 --concurrency 64
 *
 * `--contender gateway` (the default) sends sync POST /predict from closed loops; `async` sends
 * bursts of `--async-jobs` POST /jobs from each `--concurrency` level's clients, as `npm run bench`'s
 * async contender does (figures per accepted job, the worker running).
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { loadConfig } from '../shared/config/config.js';
import { integer, levels, names, positive } from './bench-options.js';
import type { Contender } from './contenders/contender.js';
import { gatewayAsync } from './contenders/gateway-async.contender.js';
import { gatewaySync } from './contenders/gateway-sync.contender.js';
import { type GatewayStack, startGatewayStack } from './gateway-stack.js';
import { IMAGE_NAMES, loadBenchImage, UniqueJpegs } from './images.js';
import { writeJsonReport } from './outputs.js';
import { runBenchmark } from './own-process.js';
import { type PhaseResult, runPhase } from './phase-runner.js';
import { StatsProbe } from './process-stats.js';
import { median } from './quantiles.js';
import type { Teardown } from './teardown.js';

type Side = 'base' | 'head';

/** The figures compared, and how each is read from a phase. */
const FIGURES: [string, (p: PhaseResult<Side>) => number | undefined][] = [
  ['req/s', (p) => p.throughput],
  ['p50 ms', (p) => p.p50Ms],
  ['p99 ms', (p) => p.p99Ms],
  ['cpu:api', (p) => p.cpuMsPerRequest.server],
  ['cpu:wrk', (p) => p.cpuMsPerRequest.worker],
  ['cpu:redis', (p) => p.cpuMsPerRequest.redis],
  ['cmds/req', (p) => p.redisCommandsPerRequest],
];

const fixed = (x: number | undefined, digits = 2) => (x === undefined ? '-' : x.toFixed(digits));

async function main(teardown: Teardown): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      base: { type: 'string' },
      contender: { type: 'string', default: 'gateway' },
      'async-jobs': { type: 'string', default: '2000' },
      seconds: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      images: { type: 'string', default: 'text-line' },
      concurrency: { type: 'string', default: '1,64' },
      out: { type: 'string', default: 'bench/results' },
      /** Which gateway starts first (long-lived processes keep where the scheduler put them). */
      first: { type: 'string', default: 'base' },
    },
  });
  if (!values.base)
    throw new Error('--base DIR: the source tree to compare with (see the top of bench/ab.ts)');
  const base = resolve(values.base);
  const seconds = positive('seconds', values.seconds);
  const [contender] = names('contender', values.contender, ['gateway', 'async'] as const);
  const asyncJobs = integer('async-jobs', values['async-jobs']);
  const rounds = integer('rounds', values.rounds);
  const concurrency = levels('concurrency', values.concurrency);
  const images = await Promise.all(names('images', values.images, IMAGE_NAMES).map(loadBenchImage));

  const config = loadConfig(process.env);
  const stats = new Redis(config.redis.url);
  teardown.add('stats Redis connection', () => void stats.disconnect());
  const ctx = { config, logDir: join(values.out, 'logs'), teardown };
  console.log(`starting base (${base}) and head gateways, ${values.first} first`);
  const [first] = names('first', values.first, ['base', 'head'] as const);
  const stacks = {} as Record<Side, GatewayStack>;
  for (const side of first === 'head' ? (['head', 'base'] as const) : (['base', 'head'] as const)) {
    stacks[side] = await startGatewayStack(
      ctx,
      side === 'base' ? { name: 'base', root: base } : { name: 'head' },
    );
  }
  const contenderOf = (stack: GatewayStack): Contender =>
    contender === 'async' ? gatewayAsync(stack, ctx) : gatewaySync(stack);
  const contenders: Record<Side, Contender<Side>> = {
    base: { ...contenderOf(stacks.base), name: 'base' },
    head: { ...contenderOf(stacks.head), name: 'head' },
  };
  const probe = new StatsProbe(stats);
  const uniques = new UniqueJpegs();
  const settings = { seconds, asyncJobs, asyncConcurrency: Math.max(...concurrency) };
  const priming = {
    ...settings,
    seconds: Math.min(2, seconds / 2),
    asyncJobs: Math.min(asyncJobs, 2 * Math.max(...concurrency)),
  };
  for (const image of images) {
    for (const side of ['base', 'head'] as const) {
      const phase = {
        round: 0,
        image,
        contender: contenders[side],
        concurrency: Math.max(...concurrency),
      };
      await runPhase(phase, { probe, uniques, settings: priming });
    }
  }

  const phases: PhaseResult<Side>[] = [];
  for (let round = 1; round <= rounds; round++) {
    const order: Side[] = round % 2 === 1 ? ['base', 'head'] : ['head', 'base'];
    for (const image of images) {
      for (const c of concurrency) {
        for (const side of order) {
          const phase = await runPhase(
            { round, image, contender: contenders[side], concurrency: c },
            { probe, uniques, settings },
          );
          phases.push(phase);
          console.log(
            `[round ${round}/${rounds}] ${image.name} c=${c} ${side}: ${fixed(phase.throughput, 1)} req/s, p50 ${fixed(phase.p50Ms)} ms, cpu api ${fixed(phase.cpuMsPerRequest.server)} wrk ${fixed(phase.cpuMsPerRequest.worker)} ms/req, ${fixed(phase.redisCommandsPerRequest, 1)} cmds/req, ${phase.errors} errors`,
          );
        }
      }
    }
  }

  const rows: string[] = [];
  rows.push(['image', 'c', 'figure', 'base', 'head', 'head/base (median of rounds)'].join(' | '));
  for (const image of images) {
    for (const c of concurrency) {
      const of = (side: Side) =>
        phases.filter((p) => p.image === image.name && p.concurrency === c && p.contender === side);
      for (const [figure, read] of FIGURES) {
        const perRound = [];
        for (let round = 1; round <= rounds; round++) {
          const [b] = of('base').filter((p) => p.round === round);
          const [h] = of('head').filter((p) => p.round === round);
          const [x, y] = [b && read(b), h && read(h)];
          if (x !== undefined && y !== undefined && x > 0) perRound.push(y / x);
        }
        rows.push(
          [
            image.name,
            String(c),
            figure,
            fixed(median(of('base').map(read))),
            fixed(median(of('head').map(read))),
            `${fixed(median(perRound))}x (${perRound.map((r) => r.toFixed(2)).join(', ')})`,
          ].join(' | '),
        );
      }
    }
  }
  console.log(`\nmedians of ${rounds} round(s) of ${seconds} s\n${rows.join('\n')}`);
  const written = writeJsonReport({
    out: values.out,
    name: 'ab',
    report: { date: new Date().toISOString(), base, seconds, rounds, phases },
    publish: false,
  });
  console.log(`\nwrote ${written.join(', ')}`);
}

await runBenchmark(fileURLToPath(import.meta.url), main);
