import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a real server (Redis here), for faults between a client and it: `down()`
 * cuts every connection and refuses new ones until `up()`; `loseAnswerTo(marker)` lets the next
 * request that carries `marker` reach the server, so it takes effect, and drops what the server
 * answers on that connection, which is then cut: the client sees its command fail though it ran.
 */
export class TcpProxy {
  private server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private lose: { marker: Buffer; cutAfterMs: number; done: () => void } | undefined;
  private portNumber = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.server = this.create();
  }

  /** A proxy on a free loopback port to the server at `url` (`redis://host:port`). */
  static async start(url: string): Promise<TcpProxy> {
    const target = new URL(url);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 6379));
    await proxy.listen(0);
    return proxy;
  }

  get port(): number {
    return this.portNumber;
  }

  /**
   * Arms the fault; resolves once it has happened: the request carrying `marker` went through and
   * its connection, silent since, was cut `cutAfterMs` later.
   */
  loseAnswerTo(marker: string, cutAfterMs: number): Promise<void> {
    return new Promise((resolve) => {
      this.lose = { marker: Buffer.from(marker), cutAfterMs, done: resolve };
    });
  }

  /** Cuts every connection; new ones are refused until `up()`. */
  async down(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const [client, upstream] of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    await closed;
  }

  /** Takes connections again, on the same port. */
  async up(): Promise<void> {
    if (this.server.listening) return;
    this.server = this.create();
    await this.listen(this.portNumber);
  }

  async close(): Promise<void> {
    await this.down();
  }

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.portNumber = (this.server.address() as AddressInfo).port;
  }

  private create(): Server {
    return createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      let muted = false;
      const cut = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('data', (chunk: Buffer) => {
        const lose = this.lose;
        if (lose && chunk.includes(lose.marker)) {
          this.lose = undefined;
          muted = true;
          setTimeout(() => {
            cut();
            lose.done();
          }, lose.cutAfterMs);
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!muted) client.write(chunk);
      });
      client.on('error', cut).on('close', cut);
      upstream.on('error', cut).on('close', cut);
    });
  }
}
