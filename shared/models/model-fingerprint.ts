import { createHash } from 'node:crypto';
import type { ModelDefinition } from './model-spec.js';

/**
 * The fields of a definition that only decide where and when a model runs, never what it answers:
 * left out of the fingerprint, so tuning them does not throw away every cached result.
 */
const NOT_ANSWER_FIELDS = new Set(['description', 'routing', 'batching']);

const fingerprints = new WeakMap<ModelDefinition, string>();

/**
 * A hash of everything in a model's registry definition that can change its answer (backends and
 * their model names and signatures, input spec, labels, postprocessing), with object keys sorted so
 * that the order a file lists them in does not matter. Part of a result cache key: a registry
 * change to the model never serves an answer computed under the old definition. Registry
 * definitions are frozen, so each is hashed once.
 */
export function modelFingerprint(model: ModelDefinition): string {
  let fingerprint = fingerprints.get(model);
  if (fingerprint === undefined) {
    const fields = Object.fromEntries(
      Object.entries(model).filter(([name]) => !NOT_ANSWER_FIELDS.has(name)),
    );
    fingerprint = createHash('sha256').update(canonicalJson(fields)).digest('hex').slice(0, 32);
    fingerprints.set(model, fingerprint);
  }
  return fingerprint;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
