/**
 * Regression: a delivery's error reached the tenant's job (`webhook_deliveries[].error`) in the
 * network's words: a refused name's resolved addresses ("localhost resolves to no public address
 * (127.0.0.1 is a loopback address...)"), the address a connection was refused at. A tenant could
 * map internal names to private addresses. Now the error is a catalogue code with fixed words,
 * and the addresses are the operator's detail (logged by the webhooks worker).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TargetPolicy } from '../../shared/webhooks/target-policy.js';
import { WebhookSender } from '../../workers/webhooks/webhook-sender.js';
import { closedPort } from '../support/inference-stack.js';

const ADDRESSES = /127\.0\.0\.1|::1|loopback|localhost/;
const strict = new TargetPolicy({ allowPrivate: false, allowedHosts: [] });
const open = new TargetPolicy({ allowPrivate: true, allowedHosts: [] });
const senders: WebhookSender[] = [];
let silent: Server;
let silentPort: number;

function sender(policy: TargetPolicy, timeoutMs = 2_000): WebhookSender {
  const created = new WebhookSender({ policy, timeoutMs });
  senders.push(created);
  return created;
}

const send = (target: WebhookSender, url: string) => target.send(url, {}, '{}');

beforeAll(async () => {
  // Takes the request and never answers.
  silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  silentPort = (silent.address() as AddressInfo).port;
});

afterAll(async () => {
  await Promise.all(senders.map((s) => s.close()));
  silent.closeAllConnections();
  await new Promise((resolve) => silent.close(resolve));
});

describe('what a delivery error tells the tenant', () => {
  it('a name resolving to loopback: WEBHOOK_TARGET_FORBIDDEN, no address; the detail has it', async () => {
    const result = await send(sender(strict), `http://localhost:${silentPort}/hook`);
    expect(result).toMatchObject({ verdict: 'stop', statusCode: null, failure: 'refused' });
    expect(result.error).toEqual({
      code: 'WEBHOOK_TARGET_FORBIDDEN',
      message: 'The webhook URL leads to an address that is not public; it was not called',
    });
    expect(result.detail).toMatch(/localhost resolves to no public address \(.*loopback/);
  });

  it('an IP literal refused at delivery: the same code, the same words', async () => {
    const result = await send(sender(strict), 'http://10.1.2.3/hook');
    expect(result.error?.code).toBe('WEBHOOK_TARGET_FORBIDDEN');
    expect(result.detail).toMatch(/10\.1\.2\.3 is a private address/);
  });

  it('a refused connection: WEBHOOK_UNREACHABLE with the system code, not the address', async () => {
    const result = await send(sender(open), `http://127.0.0.1:${await closedPort()}/hook`);
    expect(result).toMatchObject({ verdict: 'retry', failure: 'network' });
    expect(result.error).toEqual({
      code: 'WEBHOOK_UNREACHABLE',
      message: 'The receiver could not be reached (ECONNREFUSED)',
    });
    expect(result.detail).toMatch(/127\.0\.0\.1/);
  });

  it('no answer in time: WEBHOOK_TIMEOUT', async () => {
    const result = await send(sender(open, 200), `http://127.0.0.1:${silentPort}/hook`);
    expect(result).toMatchObject({ verdict: 'retry', failure: 'timeout' });
    expect(result.error).toEqual({
      code: 'WEBHOOK_TIMEOUT',
      message: 'The receiver did not answer within 200 ms',
    });
  });

  it('no error the tenant reads names an address', async () => {
    const results = await Promise.all([
      send(sender(strict), `http://localhost:${silentPort}/hook`),
      send(sender(open), `http://127.0.0.1:${await closedPort()}/hook`),
    ]);
    for (const result of results) expect(JSON.stringify(result.error)).not.toMatch(ADDRESSES);
  });
});
