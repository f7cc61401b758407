import type { Env } from './env-schema.js';

/**
 * The kinds of process that read the configuration. Every process checks every value it is given;
 * what must be given depends on what the process does, so a deployment hands each one only the
 * settings (and secrets) of its own role.
 */
export const PROCESS_ROLES = ['api', 'inference-worker', 'webhooks-worker'] as const;
export type ProcessRole = (typeof PROCESS_ROLES)[number];

/** A setting one or more roles cannot run without. */
interface Requirement {
  roles: readonly ProcessRole[];
  met(env: Env): boolean;
  /** Says what is missing and how to make it. */
  problem: string;
}

const REQUIREMENTS: readonly Requirement[] = [
  {
    // Tenants' signing secrets are derived from it: the webhooks worker signs with them, the API
    // shows each tenant its own. Outside production a development secret will do.
    roles: ['api', 'webhooks-worker'],
    met: (e) => e.NODE_ENV !== 'production' || Boolean(e.WEBHOOK_SECRET),
    problem:
      'WEBHOOK_SECRET is required in production (whsec_ + base64 of 24-64 random bytes, e.g. `echo whsec_$(openssl rand -base64 32)`)',
  },
];

/** What the given roles need and `env` lacks, one message each (empty: nothing). */
export function missingForRoles(env: Env, roles: readonly ProcessRole[]): string[] {
  return REQUIREMENTS.filter(
    (requirement) =>
      requirement.roles.some((role) => roles.includes(role)) && !requirement.met(env),
  ).map((requirement) => requirement.problem);
}
