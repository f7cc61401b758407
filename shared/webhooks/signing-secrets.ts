import { hkdfSync } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { ApiKeyConfigError, readKeysDocument } from '../auth/keys-file.js';

/** A Standard Webhooks secret: `whsec_` + base64 of at least 24 random bytes. */
export const SIGNING_SECRET_PATTERN = '^whsec_[A-Za-z0-9+/]{32,}={0,2}$';
const SIGNING_SECRET = new RegExp(SIGNING_SECRET_PATTERN);
const PREFIX = 'whsec_';

/** A tenant's secrets at once: the current one and, while it rotates, the one before. */
const MAX_SECRETS_PER_TENANT = 2;

/**
 * The HKDF `info` of a derived secret, before the tenant id. Changing it changes every tenant's
 * derived secret: a known-answer test pins it.
 */
const DERIVATION_INFO = 'ai-gateway webhook signing secret v1:';

/** Where a tenant's secrets come from. */
export type SecretSource = 'keys_file' | 'derived';

/** The secrets a tenant's messages are signed with: current first, then the previous one. */
export interface TenantSecrets {
  secrets: readonly string[];
  source: SecretSource;
}

export interface SigningSecretsOptions {
  /** WEBHOOK_SECRET (or the development secret): the master derived secrets come from. */
  master: string;
  /** WEBHOOK_SECRET_PREVIOUS: while set, every derived secret has a previous one too. */
  previousMaster?: string;
  /** Tenants' own secrets, from `webhook_secrets` in the keys file, current first. */
  tenants?: ReadonlyMap<string, readonly string[]>;
}

/**
 * A tenant's own Standard Webhooks secret: HKDF-SHA256 of the master's key bytes, with the tenant
 * id in `info`, 32 bytes, as `whsec_` + base64. A pure function of the two, so the API (which shows
 * it) and every webhooks worker (which signs with it) agree without storing anything per tenant,
 * and one tenant's secret tells nothing about another's or about the master.
 */
export function deriveSigningSecret(master: string, tenant: string): string {
  const key = Buffer.from(
    master.startsWith(PREFIX) ? master.slice(PREFIX.length) : master,
    'base64',
  );
  const derived = hkdfSync('sha256', key, Buffer.alloc(0), `${DERIVATION_INFO}${tenant}`, 32);
  return `${PREFIX}${Buffer.from(derived).toString('base64')}`;
}

/**
 * Which secrets sign which tenant's webhooks: the tenant's own from the keys file when it has
 * some, else one derived from the master (and one from the previous master while that is set).
 * Each message carries one `v1,` signature per secret (Standard Webhooks' space-separated list),
 * so during a rotation a receiver holding either secret verifies it.
 */
export class WebhookSigningSecrets {
  private readonly tenants: ReadonlyMap<string, readonly string[]>;

  constructor(private readonly options: SigningSecretsOptions) {
    this.tenants = options.tenants ?? new Map();
    const masters = new Set([options.master, options.previousMaster].filter(Boolean));
    const owners = new Map<string, string>();
    for (const [tenant, secrets] of this.tenants) {
      if (secrets.length === 0) throw new ApiKeyConfigError(`tenant "${tenant}" has no secret`);
      for (const secret of secrets) {
        // Whoever holds the master can derive every tenant's secret; a secret shared by two
        // tenants lets each sign for the other.
        if (masters.has(secret)) {
          throw new ApiKeyConfigError(
            `the webhook secret of tenant "${tenant}" is WEBHOOK_SECRET or WEBHOOK_SECRET_PREVIOUS: give it one of its own`,
          );
        }
        const other = owners.get(secret);
        if (other !== undefined && other !== tenant) {
          throw new ApiKeyConfigError(
            `tenants "${other}" and "${tenant}" have the same webhook secret: give each its own`,
          );
        }
        owners.set(secret, tenant);
      }
    }
  }

  /** How many tenants have secrets of their own (the rest use derived ones). */
  get ownSecretCount(): number {
    return this.tenants.size;
  }

  of(tenant: string): TenantSecrets {
    const own = this.tenants.get(tenant);
    if (own) return { secrets: own, source: 'keys_file' };
    const { master, previousMaster } = this.options;
    return {
      secrets: [master, ...(previousMaster ? [previousMaster] : [])].map((m) =>
        deriveSigningSecret(m, tenant),
      ),
      source: 'derived',
    };
  }

  /** The `webhook-signature` header of one message to `tenant`: one `v1,` signature per secret. */
  sign(tenant: string, msgId: string, timestamp: Date, body: string): string {
    return this.of(tenant)
      .secrets.map((secret) => new Webhook(secret).sign(msgId, timestamp, body))
      .join(' ');
  }
}

/**
 * The tenants' own secrets in a keys file: `webhook_secrets: [current, previous]` on an entry (one
 * or two `whsec_` secrets). A bad one stops start-up naming the entry, never the value.
 */
export function readTenantSecrets(path: string): Map<string, string[]> {
  const tenants = new Map<string, string[]>();
  readKeysDocument(path).forEach((entry, i) => {
    if (entry.webhook_secrets === undefined) return;
    const where = `API_KEYS_FILE ${path}: keys[${i}]${typeof entry.id === 'string' ? ` (id "${entry.id}")` : ''}`;
    if (typeof entry.id !== 'string') throw new ApiKeyConfigError(`${where}: "id" is required`);
    const secrets = entry.webhook_secrets;
    if (
      !Array.isArray(secrets) ||
      secrets.length === 0 ||
      secrets.length > MAX_SECRETS_PER_TENANT
    ) {
      throw new ApiKeyConfigError(
        `${where}: webhook_secrets must list 1 or ${MAX_SECRETS_PER_TENANT} secrets (current first, then the previous one)`,
      );
    }
    secrets.forEach((secret, j) => {
      if (typeof secret !== 'string' || !SIGNING_SECRET.test(secret)) {
        throw new ApiKeyConfigError(
          `${where}: webhook_secrets[${j}] is not a Standard Webhooks secret (whsec_ + base64 of 24 or more random bytes, e.g. \`echo whsec_$(openssl rand -base64 32)\`)`,
        );
      }
    });
    if (new Set(secrets).size !== secrets.length) {
      throw new ApiKeyConfigError(`${where}: webhook_secrets lists the same secret twice`);
    }
    tenants.set(entry.id, secrets as string[]);
  });
  return tenants;
}
