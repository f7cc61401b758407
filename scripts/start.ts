/**
 * `npm start`: the whole service on one machine, one command. Makes sure Redis answers (starting a
 * throwaway redis-server when none does and the binary exists), then runs the API, an ONNX worker
 * pool and a TF Serving worker pool as child processes with their logs on this terminal. A child
 * that dies is restarted with backoff; a configuration error (exit 78) stops everything with its
 * message; Ctrl-C stops all.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../shared/config/config.js';
import { describeRedisUrl, pingRedis } from '../shared/redis/redis.js';

const EXIT_CONFIG = 78;
const root = fileURLToPath(new URL('..', import.meta.url));

interface Service {
  name: string;
  args: string[];
  /** Workers on one host need a /metrics port each: WORKER_METRICS_PORT + this offset. */
  metricsPortOffset?: number;
  child?: ChildProcess;
  restarts: number;
  startedAt: number;
}

const defineService = (name: string, args: string[], metricsPortOffset?: number): Service => ({
  name,
  args,
  ...(metricsPortOffset === undefined ? {} : { metricsPortOffset }),
  restarts: 0,
  startedAt: 0,
});

let stopping = false;
const services: Service[] = [
  defineService('api', ['api/main.ts']),
  defineService('worker-onnx', ['workers/main.ts', '--backend', 'onnx'], 0),
  // Calls TF Serving at TENSORFLOW_SERVING_URL; without one there, its models report why.
  defineService('worker-tensorflow', ['workers/main.ts', '--backend', 'tensorflow'], 1),
  defineService('worker-webhooks', ['workers/main.ts', '--webhooks'], 2),
];
let metricsPortBase = 9464;
let redisChild: ChildProcess | undefined;

function say(message: string): void {
  process.stderr.write(`[start] ${message}\n`);
}

async function ensureRedis(url: string): Promise<void> {
  if (await pingRedis(url)) return;
  const { hostname, port: rawPort } = new URL(url);
  const host = hostname || '127.0.0.1';
  const port = Number(rawPort || 6379);
  const shown = describeRedisUrl(url);

  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host);
  const binary = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (!local || binary.error || binary.status !== 0) {
    say(`Redis does not answer at ${shown}.`);
    say('Start one (e.g. `redis-server`, `docker run -p 6379:6379 redis:7`, or');
    say('`apt-get install redis-server`), or point REDIS_URL at yours.');
    process.exit(1);
  }
  say(`no Redis at ${shown}: starting redis-server on port ${port} for this session`);
  redisChild = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 50; i++) {
    if (await pingRedis(url)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  say('redis-server did not come up within 5 s');
  process.exit(1);
}

// On a terminal the JSON log lines are made readable; piped elsewhere they stay JSON.
const pretty = process.stdout.isTTY ? (await import('pino-pretty')).default : undefined;

function launch(service: Service): void {
  service.startedAt = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', ...service.args], {
    cwd: root,
    env: {
      ...process.env,
      ...(service.metricsPortOffset === undefined
        ? {}
        : {
            WORKER_METRICS_PORT: String(
              metricsPortBase === 0 ? 0 : metricsPortBase + service.metricsPortOffset,
            ),
          }),
    },
    stdio: ['ignore', pretty ? 'pipe' : 'inherit', 'inherit'],
  });
  if (pretty) {
    child.stdout?.pipe(
      pretty({
        colorize: true,
        ignore: 'pid,hostname,service',
        messageFormat: '[{service}] {msg}',
        translateTime: 'HH:MM:ss.l',
      }),
    );
  }
  service.child = child;
  child.once('exit', (code, signal) => {
    service.child = undefined;
    if (stopping) return;
    if (code === EXIT_CONFIG) {
      say(`${service.name} stopped on a configuration error (above); stopping everything`);
      void shutdown(1);
      return;
    }
    // Back off on crash loops; a child that ran a while starts again at once.
    if (Date.now() - service.startedAt > 60_000) service.restarts = 0;
    const delay = Math.min(1000 * 2 ** service.restarts, 30_000);
    service.restarts++;
    say(`${service.name} exited (${signal ?? `code ${code}`}); restarting in ${delay / 1000} s`);
    setTimeout(() => {
      if (!stopping) launch(service);
    }, delay).unref();
  });
}

async function shutdown(exitCode: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  say('stopping');
  const running = services.flatMap((s) => (s.child ? [s.child] : []));
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          const kill = setTimeout(() => child.kill('SIGKILL'), 35_000);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  redisChild?.kill('SIGTERM');
  process.exit(exitCode);
}

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      say(err.message);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
  metricsPortBase = config.metrics.workerPort;
  // A cluster is the operator's to run: the services connect to it (and wait for it) themselves.
  if (!config.redis.clusterNodes) await ensureRedis(config.redis.url);
  for (const service of services) launch(service);
  say(
    `API on http://localhost:${config.http.port}, storage: ${config.storage.kind === 's3' ? config.storage.endpoint : config.storage.dir}. Ctrl-C stops.`,
  );
  say(
    `metrics: http://localhost:${config.http.port}/metrics (API)${services
      .filter((s) => s.metricsPortOffset !== undefined && metricsPortBase !== 0)
      .map((s) => `, :${metricsPortBase + s.metricsPortOffset!}/metrics (${s.name})`)
      .join('')}; ` +
      (config.admin.apiKey
        ? `queue dashboard: http://localhost:${config.http.port}/admin/queues (password: ADMIN_API_KEY)`
        : 'queue dashboard: set ADMIN_API_KEY to enable /admin/queues'),
  );
  process.once('SIGINT', () => void shutdown(0));
  process.once('SIGTERM', () => void shutdown(0));
}

void main();
