/**
 * Pieces shared by the integration tests that run the real pipeline: a temporary ONNX model
 * repository with generated models of known answers, the registry that describes them, a config
 * pointing at the test services, a logger whose lines a test can read, test images, and a way to
 * wait for a job without a QueueEvents connection.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { JobState, JobType, Queue } from 'bullmq';
import { pino } from 'pino';
import sharp from 'sharp';
import { type Config, loadConfig } from '../../shared/config/config.js';
import { createLogger, type Logger } from '../../shared/logging/logger.js';
import {
  buildColourClassifier,
  buildConstantDetector,
  type DetectorBox,
  writeModelRepository,
} from '../fixtures/onnx-models.js';
import type { TestServices } from './services.js';

/** Input size of the detector; its boxes are in these input pixels. */
export const DETECTOR_INPUT = 64;
export const DETECTOR_LABELS = ['cat', 'dog'] as const;
/**
 * The detector's fixed answer. Box 0 lies in the picture; box 1 lies wholly in the letterbox
 * padding above a wide image, so it must be dropped once mapped back.
 */
export const DETECTOR_BOXES: DetectorBox[] = [
  { cx: 32, cy: 32, w: 32, h: 16, classIndex: 1, score: 0.9 },
  { cx: 32, cy: 6, w: 8, h: 4, classIndex: 0, score: 0.8 },
];

/** A registry file (as a document) for the models {@link createModelRepository} writes. */
export function registryDocument(): Record<string, unknown> {
  return {
    models: {
      colour: {
        task: 'classification',
        backends: { onnx: {} },
        input: {
          width: 8,
          height: 8,
          layout: 'NCHW',
          channel_order: 'RGB',
          scale: 1 / 255,
          resize: 'stretch',
        },
        labels: ['red', 'green', 'blue'],
        postprocess: { activation: 'none' },
      },
      detector: {
        task: 'detection',
        backends: { onnx: {} },
        input: { width: DETECTOR_INPUT, height: DETECTOR_INPUT, resize: 'letterbox' },
        labels: [...DETECTOR_LABELS],
        postprocess: { format: 'yolov8' },
      },
      // Registered, but no file in the repository.
      missing: {
        task: 'classification',
        backends: { onnx: {} },
        input: { width: 8, height: 8 },
        labels: ['a', 'b', 'c'],
      },
      // A file that is not an ONNX model.
      broken: {
        task: 'classification',
        backends: { onnx: {} },
        input: { width: 8, height: 8 },
        labels: ['a', 'b', 'c'],
      },
      // Served only by a backend with no worker in these tests.
      tf_only: {
        task: 'classification',
        backends: { tensorflow: {} },
        input: { width: 8, height: 8 },
        labels: ['a', 'b', 'c'],
      },
    },
  };
}

/** Writes the colour classifier, the detector and a corrupt `broken` model under a new temp dir. */
export async function createModelRepository(): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-models-'));
  await writeModelRepository(root, {
    colour: { '1': buildColourClassifier({ size: 8 }) },
    detector: {
      '1': buildConstantDetector({
        inputSize: DETECTOR_INPUT,
        numClasses: DETECTOR_LABELS.length,
        boxes: DETECTOR_BOXES,
      }),
    },
  });
  await mkdir(path.join(root, 'broken', '1'), { recursive: true });
  await writeFile(path.join(root, 'broken', '1', 'model.onnx'), randomBytes(2048));
  return root;
}

/** A validated config for the test services, with extra variables on top. */
export function testConfig(
  services: TestServices,
  settings: { prefix: string; bucket: string; modelRepository?: string },
  extra: Record<string, string> = {},
): Config {
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    REDIS_URL: services.redisUrl,
    REDIS_PREFIX: settings.prefix,
    S3_ENDPOINT: services.s3.endpoint,
    S3_BUCKET: settings.bucket,
    S3_REGION: services.s3.region,
    S3_ACCESS_KEY: services.s3.accessKeyId,
    S3_SECRET_KEY: services.s3.secretAccessKey,
    S3_TIMEOUT_MS: '5000',
    ...(settings.modelRepository ? { MODEL_REPOSITORY: settings.modelRepository } : {}),
    // A worker's report expires after three heartbeats. The in-process worker shares its event
    // loop with the test and the app under test (and the machine with other test files): with
    // 200 ms the report could lapse while an app was being built, and the API answered the first
    // request 503 MODEL_UNAVAILABLE. 1 s (a 3 s grace) matches the end-to-end stacks.
    WORKER_HEARTBEAT_MS: '1000',
    WORKER_CONCURRENCY: '4',
    JOB_BACKOFF_MS: '100',
    // Load shedding off unless a test is about it (it sets its own threshold). Test files run side
    // by side on a few cores, and building an app blocks its event loop: on a busy machine the
    // sampler can read a lag past the 1 s default and shed an unrelated test's request with 503
    // OVERLOADED.
    MAX_EVENT_LOOP_DELAY_MS: '0',
    // The result cache off unless a test is about it (result-cache.test.ts turns it on): tests
    // send the same fixture image again and again and expect each request to run its job.
    RESULT_CACHE_TTL_SECONDS: '0',
    ...extra,
  });
}

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/**
 * A pino logger writing JSON lines into memory, for tests that assert on log output. Given a
 * service, the logger is the one the services build (serializers, redaction).
 */
export function captureLogger(
  level = 'info',
  service?: 'api' | 'worker',
): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  let pending = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      pending += chunk.toString('utf8');
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const text = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (text) lines.push(JSON.parse(text) as LogLine);
        newline = pending.indexOf('\n');
      }
      done();
    },
  });
  const logger = service ? createLogger(service, level, sink) : pino({ level }, sink);
  return { logger, lines };
}

/** A PNG of one colour. */
export function solidPng(rgb: [number, number, number], width = 16, height = 16): Promise<Buffer> {
  const [r, g, b] = rgb;
  return sharp({ create: { width, height, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();
}

/** A JPEG of random noise (so it has real entropy-coded data), cut in half. */
export async function truncatedJpeg(): Promise<Buffer> {
  const width = 64;
  const height = 64;
  const jpeg = await sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
  return jpeg.subarray(0, Math.floor(jpeg.length / 2));
}

/**
 * A 64x64 TIFF whose header is intact and whose image data is garbled: its size reads, only a
 * decode finds the damage.
 */
export async function damagedTiff(): Promise<Buffer> {
  const width = 64;
  const height = 64;
  const tiff = Buffer.from(
    await sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } })
      .tiff({ compression: 'deflate' })
      .toBuffer(),
  );
  // libvips writes the image data first and the directory (the header's sizes) after it.
  const directory = tiff.readUInt32LE(4);
  return tiff.fill(0xa5, 16, directory - 16);
}

const FINISHED_STATES = new Set<JobState | 'unknown'>(['completed', 'failed']);

/**
 * Polls a job's state until it is completed or failed (or `timeoutMs` passes), and returns it.
 * Polling keeps the test off QueueEvents, whose behaviour some tests are checking.
 */
export async function waitForJobState(
  queue: Queue,
  jobId: string,
  timeoutMs = 10_000,
): Promise<JobState | 'unknown'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await queue.getJobState(jobId);
    if (FINISHED_STATES.has(state)) return state;
    if (Date.now() > deadline) {
      throw new Error(`job ${jobId} still ${state} after ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

/** States in which a job can still run. */
const UNFINISHED_STATES: JobType[] = [
  'wait',
  'prioritized',
  'delayed',
  'active',
  'waiting-children',
];

/**
 * Polls until `queue` holds no job that can still run (none waiting, delayed or active): from then
 * on its workers change nothing, so a test can count what they did.
 */
export async function waitForIdleQueue(queue: Queue, timeoutMs = 10_000): Promise<void> {
  await eventually(
    async () => {
      const counts = await queue.getJobCounts(...UNFINISHED_STATES);
      return Object.values(counts).every((n) => n === 0) ? true : undefined;
    },
    timeoutMs,
    `queue ${queue.name} idle`,
  );
}

/**
 * A check's value must not be `false`: `eventually` waits only for `undefined`, so a check written
 * as a condition (`() => n > 3`) would pass at once. Write `n > 3 ? true : undefined`.
 */
type NotBoolean<T> = T extends false ? never : T;

/** Polls `check` until it returns a value other than undefined. */
export async function eventually<T>(
  check: () => Promise<NotBoolean<T> | undefined> | NotBoolean<T> | undefined,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A local TCP port with nothing listening on it (bound once, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
