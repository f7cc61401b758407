import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/**
 * A worker process's own /metrics, for Prometheus to scrape each pool member. Plain node:http: one
 * route, no framework. `port` 0 takes any free port (several workers on one host each need their
 * own; the bound port is logged and returned).
 */
export class MetricsServer {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(register: Registry, host: string, port: number): Promise<MetricsServer> {
    const server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      if (request.method !== 'GET' || path !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
        return;
      }
      register.metrics().then(
        (body) => response.writeHead(200, { 'content-type': register.contentType }).end(body),
        (err: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
      );
    });
    // Scrapers keep connections open between scrapes; none of them may hold up shutdown.
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new MetricsServer(server, (server.address() as AddressInfo).port);
  }

  /** Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }
}
