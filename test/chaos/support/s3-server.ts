import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../support/processes.js';
import { loadS3rver, type S3rverInstance } from '../../support/services.js';

/**
 * The S3 protocol server (s3rver) on a port and folder of its own, which a scenario can take down
 * (connections cut, the port refuses) and bring back with the objects it held.
 */
export class S3Server {
  private server: S3rverInstance | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<S3Server> {
    const server = new S3Server(
      await freePort(),
      await mkdtemp(path.join(os.tmpdir(), 'ai-gateway-chaos-s3-')),
    );
    await server.up();
    return server;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = new (loadS3rver())({
      address: '127.0.0.1',
      port: this.port,
      silent: true,
      directory: this.dir,
    });
    await server.run();
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.httpServer?.closeAllConnections();
    await server.close();
  }

  async close(): Promise<void> {
    await this.down();
    await rm(this.dir, { recursive: true, force: true });
  }
}
