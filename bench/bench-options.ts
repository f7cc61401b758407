import { parseArgs } from 'node:util';
import { CONTENDER_NAMES, type ContenderName } from './contenders/contender.js';
import { IMAGE_NAMES, type ImageName } from './images.js';

export interface BenchOptions {
  /** Measured seconds per closed-loop phase. @defaultValue 4 */
  seconds: number;
  /** Interleaved rounds; every figure reported is the median over them. @defaultValue 3 */
  rounds: number;
  /** @defaultValue ['photo', 'text-line'] */
  images: ImageName[];
  /** Closed-loop concurrency levels. @defaultValue [1, 8, 32, 64] */
  concurrency: number[];
  /** @defaultValue every contender */
  only: ContenderName[];
  /** Results folder (JSON, chart, logs/). @defaultValue 'bench/results' */
  out: string;
  /** POST /jobs per async burst. @defaultValue 2000 */
  asyncJobs: number;
  /** Concurrent clients of an async burst. @defaultValue 64 */
  asyncConcurrency: number;
  /** Copy the chart and the JSON to docs/benchmarks/. @defaultValue false */
  publish: boolean;
}

export const USAGE = `usage: npm run bench -- [options]
  --seconds N            measured seconds per phase (default 4; plus a warm-up of N/4 s, at most 1 s)
  --rounds N             interleaved rounds, medians reported (default 3)
  --images LIST          ${IMAGE_NAMES.join(',')} (default: both)
  --concurrency LIST     closed-loop levels (default 1,8,32,64)
  --only LIST            ${CONTENDER_NAMES.join(',')} (default: all)
  --async-jobs N         POST /jobs per async burst (default 2000)
  --async-concurrency N  clients of an async burst (default 64)
  --out DIR              results folder (default bench/results)
  --publish              also copy the chart and JSON to docs/benchmarks/
  -h, --help             this text`;

/** Reads the command line; throws a message naming the option on a bad value. */
export function parseBenchOptions(args: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '3' },
      images: { type: 'string', default: IMAGE_NAMES.join(',') },
      concurrency: { type: 'string', default: '1,8,32,64' },
      only: { type: 'string', default: CONTENDER_NAMES.join(',') },
      out: { type: 'string', default: 'bench/results' },
      'async-jobs': { type: 'string', default: '2000' },
      'async-concurrency': { type: 'string', default: '64' },
      publish: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  return {
    seconds: positive('seconds', values.seconds),
    rounds: integer('rounds', values.rounds),
    images: names('images', values.images, IMAGE_NAMES),
    concurrency: levels('concurrency', values.concurrency),
    only: names('only', values.only, CONTENDER_NAMES),
    out: values.out,
    asyncJobs: integer('async-jobs', values['async-jobs']),
    asyncConcurrency: integer('async-concurrency', values['async-concurrency']),
    publish: values.publish,
  };
}

/** A positive number (`--seconds 0.5`). */
export function positive(option: string, text: string): number {
  const n = Number(text);
  if (!(n > 0)) throw new Error(`--${option} takes a positive number, got "${text}"`);
  return n;
}

export function integer(option: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`--${option} takes positive integers, got "${text}"`);
  }
  return n;
}

/** Concurrency levels: positive integers, each once, ascending. */
export function levels(option: string, text: string): number[] {
  return [...new Set(text.split(',').map((c) => integer(option, c)))].sort((a, b) => a - b);
}

export function names<T extends string>(option: string, text: string, known: readonly T[]): T[] {
  const given = text.split(',').map((s) => s.trim());
  const unknown = given.filter((name) => !known.includes(name as T));
  if (unknown.length > 0 || given.length === 0) {
    throw new Error(`--${option}: unknown ${unknown.join(', ')}; known: ${known.join(', ')}`);
  }
  // In the order of `known`, each once.
  return known.filter((name) => given.includes(name));
}
