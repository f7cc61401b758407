import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiKeyConfigError, ApiKeyRing } from '../../api/auth/api-key-ring.js';

const dir = mkdtempSync(join(tmpdir(), 'api-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KEY_A = 'a-very-secret-key-0001';
const KEY_B = 'b-very-secret-key-0002';

function failure(run: () => unknown): ApiKeyConfigError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiKeyConfigError);
    return err as ApiKeyConfigError;
  }
  throw new Error('expected a configuration error');
}

describe('ApiKeyRing', () => {
  it('is open when no keys are configured', () => {
    expect(ApiKeyRing.load(undefined, undefined).open).toBe(true);
    expect(ApiKeyRing.load(' , ', undefined).open).toBe(true);
  });

  it('accepts the configured keys and names their ids; refuses others', () => {
    const ring = ApiKeyRing.load(`acme:${KEY_A}, globex:${KEY_B}`, undefined);
    expect(ring.open).toBe(false);
    expect(ring.verify(KEY_A)?.id).toBe('acme');
    expect(ring.verify(KEY_B)?.id).toBe('globex');
    expect(ring.verify('a-very-secret-key-0003')).toBeUndefined();
    expect(ring.verify('')).toBeUndefined();
    expect(ring.verify(`${KEY_A} `)).toBeUndefined();
  });

  it('keeps only hashes, never the keys', () => {
    const ring = ApiKeyRing.load(`acme:${KEY_A}`, undefined);
    expect(JSON.stringify(ring)).not.toContain(KEY_A);
    expect(JSON.stringify(ring)).not.toContain(Buffer.from(KEY_A).toString('hex'));
  });

  it('a key may contain colons', () => {
    const key = 'with:colons:inside:1234';
    expect(ApiKeyRing.load(`acme:${key}`, undefined).verify(key)?.id).toBe('acme');
  });

  it('reads a keys file with hashed keys and per-key rate limits', () => {
    const file = join(dir, 'keys.yaml');
    const digest = createHash('sha256').update(KEY_B).digest('hex');
    writeFileSync(
      file,
      `keys:\n  - id: acme\n    key: ${KEY_A}\n    rate_limit: { requests: 5, window: 10 }\n  - id: globex\n    sha256: ${digest}\n`,
    );
    const ring = ApiKeyRing.load(undefined, file);
    expect(ring.verify(KEY_A)).toMatchObject({
      id: 'acme',
      rateLimit: { requests: 5, windowSeconds: 10 },
    });
    expect(ring.verify(KEY_B)?.id).toBe('globex');
    expect(ring.verify(KEY_B)?.rateLimit).toBeUndefined();
  });

  it("reads a key's quota, and refuses one that caps nothing or names no known policy", () => {
    const file = join(dir, 'quota-keys.yaml');
    writeFileSync(
      file,
      `keys:\n  - id: acme\n    key: ${KEY_A}\n    quota: { images_per_day: 1000, jobs_per_month: 20000 }\n  - id: globex\n    key: ${KEY_B}\n    quota: { jobs_per_month: 5 }\n`,
    );
    const ring = ApiKeyRing.load(`initech:${'c-very-secret-key-0003'}`, file);
    expect(ring.verify(KEY_A)?.quota).toEqual({ images_per_day: 1000, jobs_per_month: 20000 });
    expect(ring.byId('globex')?.quota).toEqual({ jobs_per_month: 5 });
    expect(ring.byId('initech')?.quota).toBeUndefined();
    expect(ring.byId('umbrella')).toBeUndefined();
    for (const quota of [
      '{}',
      '{ images_per_day: 0 }',
      '{ images_per_hour: 5 }',
      '{ jobs_per_month: 1.5 }',
      '12',
    ]) {
      writeFileSync(file, `keys:\n  - id: acme\n    key: ${KEY_A}\n    quota: ${quota}\n`);
      const { message } = failure(() => ApiKeyRing.load(undefined, file));
      expect(message).toBe(
        `API_KEYS_FILE ${file}: keys[0] (id "acme"): quota needs one or both of images_per_day, jobs_per_month, whole numbers >= 1`,
      );
    }
  });

  it('refuses malformed entries without echoing the secret', () => {
    const err = failure(() => ApiKeyRing.load('no-colon-here-but-long', undefined));
    expect(err.message).toContain('entry 1');
    expect(err.message).not.toContain('no-colon-here-but-long');
    expect(failure(() => ApiKeyRing.load('acme:short', undefined)).message).toContain(
      'at least 16',
    );
    expect(
      failure(() => ApiKeyRing.load(`acme:${KEY_A},acme:${KEY_B}`, undefined)).message,
    ).toContain('twice');
    expect(failure(() => ApiKeyRing.load(`bad id:${KEY_A}`, undefined)).message).toContain(
      'bad id',
    );
  });

  it("reads each key's weight for fair scheduling (default 1), and refuses a bad one", () => {
    const file = join(dir, 'weights.yaml');
    writeFileSync(
      file,
      `keys:\n  - id: heavy\n    key: ${KEY_A}\n    weight: 3\n  - id: plain\n    key: ${KEY_B}\n`,
    );
    const ring = ApiKeyRing.load('listed:listed-key-0123456789', file);
    expect(ring.weightOf('heavy')).toBe(3);
    expect(ring.weightOf('plain')).toBe(1);
    expect(ring.weightOf('listed')).toBe(1);
    expect(ring.weightOf('anonymous')).toBe(1);
    for (const weight of ['0', '1.5', '1001', 'heavy']) {
      writeFileSync(file, `keys:\n  - id: acme\n    key: ${KEY_A}\n    weight: ${weight}\n`);
      const message = failure(() => ApiKeyRing.load(undefined, file)).message;
      expect(message).toContain('weight must be a whole number from 1 to 1000');
      expect(message).not.toContain(KEY_A);
    }
  });

  it('refuses a keys file that is missing, malformed, or has a bad entry', () => {
    expect(failure(() => ApiKeyRing.load(undefined, join(dir, 'none.yaml'))).message).toContain(
      'cannot be read',
    );
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'keys:\n  - id: acme\n    sha256: nothex\n');
    expect(failure(() => ApiKeyRing.load(undefined, file)).message).toContain('keys[0]');
    writeFileSync(
      file,
      'keys:\n  - id: acme\n    key: long-enough-key-123\n    rate_limit: { requests: 0 }\n',
    );
    expect(failure(() => ApiKeyRing.load(undefined, file)).message).toContain('rate_limit');
    writeFileSync(file, 'nothing: here\n');
    expect(failure(() => ApiKeyRing.load(undefined, file)).message).toContain('"keys"');
  });

  // Regression: the JSON and YAML parsers' messages quote the source around a syntax error, and
  // that message went into the fatal start-up log line.
  it('refuses a keys file that does not parse by line and column, never quoting it', () => {
    const cases = [
      // An unquoted key in JSON; a key whose closing quote is missing; a key after a stray colon.
      [
        'keys.json',
        `{"keys": [\n  {"id": "acme",\n   "key": ${KEY_A}}\n]}\n`,
        /JSON: .* at line 3, column 11$/,
      ],
      [
        'keys.yaml',
        `keys:\n  - id: acme\n    key: "${KEY_A}\n  - id: globex\n`,
        /YAML: MISSING_CHAR at line 5/,
      ],
      [
        'keys.yml',
        `keys:\n  - id: acme\n    key: ${KEY_A}: ${KEY_B}\n`,
        /YAML: \w+ at line 3, column \d+$/,
      ],
    ] as const;
    for (const [name, text, expected] of cases) {
      const file = join(dir, name);
      writeFileSync(file, text);
      const { message } = failure(() => ApiKeyRing.load(undefined, file));
      for (const secret of [KEY_A, KEY_B, KEY_A.slice(0, 8), KEY_B.slice(0, 8)]) {
        expect(message).not.toContain(secret);
      }
      expect(message).toContain(`API_KEYS_FILE ${file} is not valid`);
      expect(message).toMatch(expected);
    }
  });

  it('refuses ids that would pass for the anonymous tenant or for an IP address', () => {
    for (const id of ['anonymous', '10.0.0.1', '127.0.0.1']) {
      expect(failure(() => ApiKeyRing.load(`${id}:${KEY_A}`, undefined)).message).toContain(
        'reserved',
      );
    }
    expect(ApiKeyRing.load(`anonymous-2:${KEY_A}`, undefined).verify(KEY_A)?.id).toBe(
      'anonymous-2',
    );
  });

  it('reads digests and keys made only of digits as text, not numbers', () => {
    const file = join(dir, 'digits.yaml');
    const key = '1234567890123456789';
    const digest = createHash('sha256').update(KEY_A).digest('hex').replace(/[a-f]/g, '0');
    writeFileSync(
      file,
      `keys:\n  - id: numeric\n    key: ${key}\n  - id: zeros\n    sha256: ${digest}\n    rate_limit: { requests: 7, window: 9 }\n`,
    );
    const ring = ApiKeyRing.load(undefined, file);
    expect(ring.verify(key)?.id).toBe('numeric');
    expect(ring.size).toBe(2);
  });

  it('loads the example keys file shipped for docker compose', () => {
    expect(ApiKeyRing.load(undefined, 'deploy/keys/keys.example.yaml').size).toBe(1);
  });
});
