import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import { eventually } from './inference-stack.js';
import { freePort } from './processes.js';

const run = promisify(execFile);
const START_TIMEOUT_MS = 20_000;

/** Whether `redis-server` and `redis-cli` are on the PATH (CI and the build machines have them). */
export async function redisClusterToolsAvailable(): Promise<boolean> {
  try {
    await run('redis-server', ['--version'], { timeout: 5000 });
    await run('redis-cli', ['--version'], { timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * A Redis Cluster of the test's own: three masters, no replicas, on free loopback ports, their
 * cluster state files in a temporary folder, nothing persisted. `close()` kills the nodes and
 * removes the folder.
 */
export class RedisCluster {
  private constructor(
    readonly ports: number[],
    private readonly dir: string,
    private readonly nodes: ChildProcess[],
  ) {}

  /** `REDIS_URL` for the gateway: every node, comma-separated. */
  get url(): string {
    return this.ports.map((port) => `redis://127.0.0.1:${port}`).join(',');
  }

  static async start(masters = 3): Promise<RedisCluster> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-redis-cluster-'));
    const ports: number[] = [];
    const nodes: ChildProcess[] = [];
    const cluster = new RedisCluster(ports, dir, nodes);
    try {
      for (let i = 0; i < masters; i++) {
        const port = await freePort();
        ports.push(port);
        // The cluster bus gets a free port of its own: the default, port + 10000, may be taken.
        nodes.push(startNode(port, await freePort(), dir));
      }
      await Promise.all(ports.map((port) => untilAnswers(port, nodes)));
      await run(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...ports.map((port) => `127.0.0.1:${port}`),
          ...['--cluster-replicas', '0', '--cluster-yes'],
        ],
        { timeout: START_TIMEOUT_MS },
      );
      await Promise.all(ports.map((port) => untilClusterOk(port)));
      return cluster;
    } catch (err) {
      await cluster.close();
      throw err;
    }
  }

  /** A client of the test's own, to look at keys where the gateway put them. */
  client(): Cluster {
    return new Cluster(this.ports.map((port) => ({ host: '127.0.0.1', port })));
  }

  async close(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (node) => {
        if (node.exitCode !== null || node.signalCode) return;
        const exited = new Promise((resolve) => node.once('exit', resolve));
        node.kill('SIGKILL');
        await exited;
      }),
    );
    await rm(this.dir, { recursive: true, force: true });
  }
}

function startNode(port: number, busPort: number, dir: string): ChildProcess {
  return spawn(
    'redis-server',
    [
      ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir],
      ...['--cluster-enabled', 'yes', '--cluster-port', String(busPort)],
      ...['--cluster-config-file', `nodes-${port}.conf`],
      ...['--appendonly', 'no', '--save', '', '--loglevel', 'warning'],
    ],
    { stdio: 'ignore' },
  );
}

async function untilAnswers(port: number, nodes: ChildProcess[]): Promise<void> {
  await eventually(
    async () => {
      const exited = nodes.find((node) => node.exitCode !== null);
      if (exited) throw new Error(`a redis-server exited with ${exited.exitCode}`);
      return (await cli(port, 'PING')) === 'PONG' || undefined;
    },
    START_TIMEOUT_MS,
    `redis-server on port ${port} answering`,
  );
}

async function untilClusterOk(port: number): Promise<void> {
  await eventually(
    async () => (await cli(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok') || undefined,
    START_TIMEOUT_MS,
    `cluster_state:ok on port ${port}`,
  );
}

async function cli(port: number, ...command: string[]): Promise<string> {
  try {
    const { stdout } = await run('redis-cli', ['-p', String(port), ...command], { timeout: 2000 });
    return stdout.trim();
  } catch {
    return '';
  }
}
