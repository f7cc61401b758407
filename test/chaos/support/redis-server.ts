import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../support/processes.js';

/**
 * A `redis-server` of the scenario's own, a child of the test, with the append-only file on and
 * fsync'ed on every write (`appendfsync always`), so a stop or a crash loses no acknowledged write.
 * It can be stopped, killed and started again on the same port and data.
 */
export class RedisServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<RedisServer> {
    const server = new RedisServer(
      await freePort(),
      await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-chaos-redis-')),
    );
    await server.up();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && !this.child.signalCode;
  }

  /** Starts the server (again) on its port and data directory; resolves once it answers PING. */
  async up(): Promise<void> {
    if (this.running) return;
    const child = spawn(
      'redis-server',
      [
        ...['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir],
        ...['--appendonly', 'yes', '--appendfsync', 'always', '--save', ''],
        ...['--loglevel', 'warning'],
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
      if (await this.answers()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server on port ${this.port} did not answer within 10 s`);
  }

  /** A clean shutdown (SIGTERM: Redis finishes the append-only file and exits). */
  async stop(): Promise<void> {
    await this.end('SIGTERM');
  }

  /** A crash: SIGKILL, no chance to write anything more. */
  async kill(): Promise<void> {
    await this.end('SIGKILL');
  }

  /** `used_memory` in bytes. */
  async usedMemory(): Promise<number> {
    const redis = this.client();
    try {
      const info = await redis.info('memory');
      return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
    } finally {
      redis.disconnect();
    }
  }

  async close(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  private async answers(): Promise<boolean> {
    const redis = this.client();
    try {
      return (await redis.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      redis.disconnect();
    }
  }

  private client(): Redis {
    const redis = new Redis(this.url, {
      lazyConnect: false,
      connectTimeout: 500,
      commandTimeout: 1000,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableOfflineQueue: true,
    });
    redis.on('error', () => undefined);
    return redis;
  }
}
