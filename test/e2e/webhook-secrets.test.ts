/**
 * One webhook signing secret per tenant (issue 11, item 3): each API key's messages are signed with
 * its own secrets (from the keys file, or derived from the master secret and its id), shown to that
 * key only, two at once while rotating; a tenant cannot verify, so cannot forge, another's.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiGatewayClient, verifyWebhook } from '../../client/index.js';
import { deriveSigningSecret } from '../../shared/webhooks/signing-secrets.js';
import { renderTextLine } from '../fixtures/images.js';
import { eventually } from '../support/inference-stack.js';
import {
  freePort,
  type ServiceProcess,
  startApi,
  startWebhookWorker,
} from '../support/processes.js';
import { uniquePrefix } from '../support/services.js';
import { sharedServices } from '../support/shared-services.js';
import { type Stack, startStack } from '../support/stack.js';
import { type ReceivedWebhook, WebhookReceiver } from '../support/webhook-receiver.js';

const EXIT_CONFIG = 78;
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
const MASTER = newSecret();
const PREVIOUS_MASTER = newSecret();
/** globex has secrets of its own in the keys file, mid-rotation: the new one first. */
const GLOBEX_NEW = newSecret();
const GLOBEX_OLD = newSecret();
const KEYS = { acme: 'acme-key-0123456789abcdef', globex: 'globex-key-0123456789abcdef' };

describe('webhook signing secrets, one per tenant', () => {
  const services = sharedServices();
  let receiver: WebhookReceiver;
  let stack: Stack;
  let dir: string;
  let keysFile: string;
  let image: Buffer;
  const client = (key?: string) =>
    new AiGatewayClient({ baseUrl: stack.baseUrl, ...(key ? { apiKey: key } : {}) });

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'webhook-secrets-'));
    keysFile = path.join(dir, 'keys.yaml');
    await writeFile(
      keysFile,
      `keys:\n  - id: globex\n    key: ${KEYS.globex}\n    webhook_secrets: [${GLOBEX_NEW}, ${GLOBEX_OLD}]\n`,
    );
    stack = await startStack(services, {
      webhooks: true,
      // acme's key comes from API_KEYS, globex's from the keys file, which the worker reads too.
      apiKeys: { acme: KEYS.acme },
      env: {
        API_KEYS_FILE: keysFile,
        WEBHOOK_SECRET: MASTER,
        WEBHOOK_SECRET_PREVIOUS: PREVIOUS_MASTER,
        WEBHOOK_ALLOW_PRIVATE: 'true',
      },
    });
    image = await renderTextLine('Whose secret');
  });
  afterAll(async () => {
    await stack?.stop();
    await receiver?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The `completed` message of a job that `key` submits with a webhook to `hookPath`. */
  async function deliveredFor(key: string, hookPath: string): Promise<ReceivedWebhook> {
    const job = await client(key).submit('text_orientation', image, {
      webhook: receiver.url(hookPath),
    });
    return eventually(
      () =>
        receiver.on(hookPath).find((m) => m.headers['webhook-id'] === `msg_${job.id}_completed`),
      20_000,
      `the webhook of ${hookPath}`,
    );
  }

  const verifiesWith = (secret: string, message: ReceivedWebhook) => {
    try {
      verifyWebhook(secret, message.body, message.headers as Record<string, string>);
      return true;
    } catch {
      return false;
    }
  };

  it('GET /webhooks/secret answers the caller its own secrets only, and 401 without a key', async () => {
    const anonymous = await fetch(`${stack.baseUrl}/webhooks/secret`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ code: 'API_KEY_REQUIRED' });
    const wrong = await fetch(`${stack.baseUrl}/webhooks/secret`, {
      headers: { authorization: 'Bearer not-a-key-of-anyone-here' },
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ code: 'API_KEY_INVALID' });

    const acme = await fetch(`${stack.baseUrl}/webhooks/secret`, {
      headers: { authorization: `Bearer ${KEYS.acme}` },
    });
    expect(acme.status).toBe(200);
    expect(acme.headers.get('cache-control')).toBe('no-store');
    // Derived from the master and the key id, as the README documents it; while the master
    // rotates, the secret derived from the one before is still valid.
    expect(await acme.json()).toEqual({
      tenant: 'acme',
      secret: deriveSigningSecret(MASTER, 'acme'),
      previous: deriveSigningSecret(PREVIOUS_MASTER, 'acme'),
      source: 'derived',
    });
    expect(await client(KEYS.globex).webhookSecret()).toEqual({
      tenant: 'globex',
      secret: GLOBEX_NEW,
      previous: GLOBEX_OLD,
      source: 'keys_file',
    });
  });

  it("a tenant's delivery verifies with its own secrets and not with another tenant's", async () => {
    const acmeSecrets = await client(KEYS.acme).webhookSecret();
    const [acme, globex] = await Promise.all([
      deliveredFor(KEYS.acme, '/acme'),
      deliveredFor(KEYS.globex, '/globex'),
    ]);

    expect(verifiesWith(acmeSecrets.secret, acme)).toBe(true);
    for (const foreign of [GLOBEX_NEW, GLOBEX_OLD, MASTER, PREVIOUS_MASTER]) {
      expect(verifiesWith(foreign, acme)).toBe(false);
    }

    expect(verifiesWith(GLOBEX_NEW, globex)).toBe(true);
    for (const foreign of [
      acmeSecrets.secret,
      acmeSecrets.previous!,
      deriveSigningSecret(MASTER, 'globex'),
      MASTER,
    ]) {
      expect(verifiesWith(foreign, globex)).toBe(false);
    }
  });

  it('while rotating, each message carries one signature per secret, and each verifies alone', async () => {
    const globex = await deliveredFor(KEYS.globex, '/globex-rotation');
    const signatures = String(globex.headers['webhook-signature']).split(' ');
    expect(signatures).toHaveLength(2);
    for (const signature of signatures) expect(signature).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    // Each secret alone matches exactly one of the two signatures.
    const only = (signature: string) => ({
      ...globex,
      headers: { ...globex.headers, 'webhook-signature': signature },
    });
    expect(verifiesWith(GLOBEX_NEW, only(signatures[0]!))).toBe(true);
    expect(verifiesWith(GLOBEX_OLD, only(signatures[1]!))).toBe(true);
    expect(verifiesWith(GLOBEX_NEW, only(signatures[1]!))).toBe(false);
    expect(verifiesWith(GLOBEX_OLD, only(signatures[0]!))).toBe(false);

    // A derived tenant during a master rotation: one signature per master.
    const acme = await deliveredFor(KEYS.acme, '/acme-rotation');
    expect(String(acme.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(verifiesWith(deriveSigningSecret(PREVIOUS_MASTER, 'acme'), acme)).toBe(true);
  });

  it('derives the same secret in every process: another API instance answers the same', async () => {
    const port = await freePort();
    const second = startApi({ ...stack.env, PORT: String(port) });
    try {
      await second.waitForLog(/Server listening/);
      const other = new AiGatewayClient({
        baseUrl: `http://127.0.0.1:${port}`,
        apiKey: KEYS.acme,
      });
      expect(await other.webhookSecret()).toEqual(await client(KEYS.acme).webhookSecret());
    } finally {
      await second.stop();
    }
  });

  describe('a malformed secret in the keys file stops start-up without printing it', () => {
    const MALFORMED = 'whsec_short-and-secret';
    let badFile: string;
    const badEnv = async () => ({
      ...stack.env,
      REDIS_PREFIX: uniquePrefix(),
      PORT: String(await freePort()),
      API_KEYS_FILE: badFile,
    });

    beforeAll(async () => {
      badFile = path.join(dir, 'bad-keys.yaml');
      await writeFile(
        badFile,
        `keys:\n  - id: globex\n    key: ${KEYS.globex}\n    webhook_secrets: [${MALFORMED}]\n`,
      );
    });

    const expectRefused = async (service: ServiceProcess, failure: string) => {
      const { code } = await service.exited;
      expect(code).toBe(EXIT_CONFIG);
      const line = service.logs().find((l) => l.msg === failure);
      expect(line?.err).toContain('keys[0] (id "globex"): webhook_secrets[0] is not a Standard');
      expect(service.lines.join('\n')).not.toContain('short-and-secret');
    };

    it('the API', async () => {
      await expectRefused(startApi(await badEnv()), 'API failed to start');
    });

    it('the webhooks worker', async () => {
      await expectRefused(startWebhookWorker(await badEnv()), 'webhooks worker failed to start');
    });
  });
});
