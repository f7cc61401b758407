import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the receiver got. */
export interface ReceivedWebhook {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** What the receiver answers; by default 204. */
export type WebhookReply = { status: number; headers?: Record<string, string>; delayMs?: number };

/**
 * A webhook receiver on loopback for tests: records every request (raw body kept for signature
 * checks) and answers what `reply` says for it, so a test can fail some attempts on purpose.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  /** Requests received and not yet answered, now and at most so far. */
  inFlight = 0;
  maxInFlight = 0;
  reply: (request: ReceivedWebhook, index: number) => WebhookReply = () => ({ status: 204 });
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<WebhookReceiver> {
    let receiver: WebhookReceiver | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const request: ReceivedWebhook = {
          path: req.url ?? '/',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          at: Date.now(),
        };
        const self = receiver!;
        const index = self.received.push(request) - 1;
        self.inFlight++;
        self.maxInFlight = Math.max(self.maxInFlight, self.inFlight);
        res.on('close', () => self.inFlight--);
        const answer = self.reply(request, index);
        setTimeout(() => {
          res.writeHead(answer.status, answer.headers).end();
        }, answer.delayMs ?? 0);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    receiver = new WebhookReceiver(server, (server.address() as AddressInfo).port);
    return receiver;
  }

  /** A URL on this receiver; `path` tells tests' webhooks apart. */
  url(path = '/hook', host = '127.0.0.1'): string {
    return `http://${host}:${this.port}${path}`;
  }

  on(path: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.path === path);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
