import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiKeyConfigError } from '../../shared/auth/keys-file.js';
import {
  deriveSigningSecret,
  readTenantSecrets,
  SIGNING_SECRET_PATTERN,
  WebhookSigningSecrets,
} from '../../shared/webhooks/signing-secrets.js';

const dir = mkdtempSync(join(tmpdir(), 'signing-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const secret = (fill: number) => `whsec_${Buffer.alloc(32, fill).toString('base64')}`;
const MASTER = secret(7);
const PREVIOUS_MASTER = secret(8);
const ACME_OWN = secret(1);
const ACME_OLD = secret(2);

function keysFile(yaml: string): string {
  const file = join(dir, `keys-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

function configFailure(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiKeyConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a configuration error');
}

/** Verifies one message's headers with one secret, as a receiver would. */
function verifies(withSecret: string, id: string, at: Date, body: string, signature: string) {
  const headers = {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  };
  try {
    new Webhook(withSecret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
}

describe('deriveSigningSecret', () => {
  it('is a fixed function of the master and the tenant id (known answer)', () => {
    // Pinned: every tenant's receivers hold these; a change here breaks all their verifications.
    expect(deriveSigningSecret(MASTER, 'acme')).toBe(
      'whsec_8JYZ3YHmJWjpVl51S0Wur/WL/d/Pu2w1BmHDeeO4xmQ=',
    );
    expect(deriveSigningSecret(MASTER, 'anonymous')).toBe(
      'whsec_kK1wEgVpl0ReVVM2aPH9yeqLaGDOQF6OWVe3+msa0KU=',
    );
  });

  it('gives each tenant and each master a different Standard Webhooks secret, never the master', () => {
    const derived = [
      deriveSigningSecret(MASTER, 'acme'),
      deriveSigningSecret(MASTER, 'globex'),
      deriveSigningSecret(PREVIOUS_MASTER, 'acme'),
    ];
    expect(new Set([...derived, MASTER, PREVIOUS_MASTER]).size).toBe(5);
    for (const value of derived) {
      expect(value).toMatch(new RegExp(SIGNING_SECRET_PATTERN));
      expect(Buffer.from(value.slice('whsec_'.length), 'base64')).toHaveLength(32);
    }
  });
});

describe('WebhookSigningSecrets', () => {
  const secrets = new WebhookSigningSecrets({
    master: MASTER,
    tenants: new Map([['acme', [ACME_OWN, ACME_OLD]]]),
  });
  const id = 'msg_job-1_completed';
  const body = '{"id":"job-1"}';

  it("signs a tenant's message with its own secrets only: each verifies, no other does", () => {
    const at = new Date();
    const signature = secrets.sign('acme', id, at, body);
    expect(signature.split(' ')).toHaveLength(2);
    expect(signature).toMatch(/^v1,[A-Za-z0-9+/]+=* v1,[A-Za-z0-9+/]+=*$/);
    expect(verifies(ACME_OWN, id, at, body, signature)).toBe(true);
    expect(verifies(ACME_OLD, id, at, body, signature)).toBe(true);
    expect(verifies(MASTER, id, at, body, signature)).toBe(false);
    expect(verifies(deriveSigningSecret(MASTER, 'acme'), id, at, body, signature)).toBe(false);
    expect(verifies(deriveSigningSecret(MASTER, 'globex'), id, at, body, signature)).toBe(false);
  });

  it('signs a tenant without secrets of its own with the one derived for it', () => {
    const at = new Date();
    expect(secrets.of('globex')).toEqual({
      secrets: [deriveSigningSecret(MASTER, 'globex')],
      source: 'derived',
    });
    const signature = secrets.sign('globex', id, at, body);
    expect(signature.split(' ')).toHaveLength(1);
    expect(verifies(deriveSigningSecret(MASTER, 'globex'), id, at, body, signature)).toBe(true);
    expect(verifies(MASTER, id, at, body, signature)).toBe(false);
    expect(verifies(ACME_OWN, id, at, body, signature)).toBe(false);
  });

  it('while the master rotates, derived messages carry a signature from each master', () => {
    const rotating = new WebhookSigningSecrets({ master: MASTER, previousMaster: PREVIOUS_MASTER });
    const at = new Date();
    const signature = rotating.sign('globex', id, at, body);
    expect(signature.split(' ')).toHaveLength(2);
    expect(verifies(deriveSigningSecret(MASTER, 'globex'), id, at, body, signature)).toBe(true);
    expect(verifies(deriveSigningSecret(PREVIOUS_MASTER, 'globex'), id, at, body, signature)).toBe(
      true,
    );
  });

  it('refuses a tenant secret that is a master secret, or that another tenant has', () => {
    const asMaster = configFailure(
      () => new WebhookSigningSecrets({ master: MASTER, tenants: new Map([['acme', [MASTER]]]) }),
    );
    expect(asMaster).toContain('tenant "acme"');
    const shared = configFailure(
      () =>
        new WebhookSigningSecrets({
          master: MASTER,
          tenants: new Map([
            ['acme', [ACME_OWN]],
            ['globex', [ACME_OWN]],
          ]),
        }),
    );
    expect(shared).toContain('"acme" and "globex"');
    for (const message of [asMaster, shared]) {
      expect(message).not.toContain(MASTER.slice(6));
      expect(message).not.toContain(ACME_OWN.slice(6));
    }
  });
});

describe('readTenantSecrets', () => {
  it("reads each entry's webhook_secrets, current first; entries without any are left out", () => {
    const file = keysFile(
      `keys:\n  - id: acme\n    sha256: ${'0'.repeat(64)}\n    webhook_secrets: [${ACME_OWN}, ${ACME_OLD}]\n  - id: globex\n    key: globex-key-0123456789\n`,
    );
    expect(readTenantSecrets(file)).toEqual(new Map([['acme', [ACME_OWN, ACME_OLD]]]));
  });

  it('stops on a malformed secret, naming the entry and never the value', () => {
    const cases = [
      ['webhook_secrets: [whsec_hunter2hunter2]', 'webhook_secrets[0] is not a Standard Webhooks'],
      [`webhook_secrets: [${ACME_OWN}, hunter2hunter2hunter2]`, 'webhook_secrets[1]'],
      [`webhook_secrets: ${ACME_OWN}`, 'must list 1 or 2'],
      [`webhook_secrets: [${ACME_OWN}, ${ACME_OLD}, ${secret(3)}]`, 'must list 1 or 2'],
      [`webhook_secrets: [${ACME_OWN}, ${ACME_OWN}]`, 'the same secret twice'],
      ['webhook_secrets: []', 'must list 1 or 2'],
    ] as const;
    for (const [line, expected] of cases) {
      const file = keysFile(
        `keys:\n  - id: globex\n    key: globex-key-0123456789\n  - id: acme\n    ${line}\n`,
      );
      const message = configFailure(() => readTenantSecrets(file));
      expect(message).toContain('keys[1] (id "acme")');
      expect(message).toContain(expected);
      expect(message).not.toContain('hunter2');
      expect(message).not.toContain(ACME_OWN.slice(6));
    }
  });

  it('reads the example keys file shipped for docker compose', () => {
    expect(readTenantSecrets('deploy/keys/keys.example.yaml')).toBeInstanceOf(Map);
  });
});
