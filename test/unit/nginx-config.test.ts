import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EnvSchema } from '../../shared/config/env-schema.js';
import { NGINX, renderNginxConf, testNginxConf } from '../support/nginx.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const defaults = EnvSchema.properties as Record<string, { default?: number }>;
const inCi = process.env.CI === 'true';

/** The value of a directive that appears once in the rendered config. */
function directive(conf: string, name: string): string {
  const found = [...conf.matchAll(new RegExp(`^\\s*${name}\\s+([^;{]+);`, 'gm'))];
  expect(found, name).toHaveLength(1);
  return found[0]![1]!.trim();
}

/** nginx sizes (`11m`, `512k`, bytes) in bytes; times (`130s`, `2m`) in seconds. */
const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const TIME_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600 };
function amount(value: string, units: Record<string, number>): number {
  const [, number, unit = ''] = /^(\d+)([a-z]?)$/i.exec(value) ?? [];
  const factor = units[unit.toLowerCase()];
  if (number === undefined || factor === undefined) throw new Error(`cannot read "${value}"`);
  return Number(number) * factor;
}

const conf = renderNginxConf({ listenPort: 8000, apiServers: ['127.0.0.1:8000'] });

describe('nginx load balancer config', () => {
  it.skipIf(!NGINX && !inCi)('is accepted by nginx -t', async () => {
    // With CI=true a missing nginx fails here (NGINX_INSTALL_HINT): .ci/run installs it.
    const output = await testNginxConf({
      listenPort: 8000,
      apiServers: ['127.0.0.1:8001', '127.0.0.1:8002'],
    });
    expect(output).toContain('test is successful');
  });

  it("follows the API's limits: body size above MAX_UPLOAD_BYTES, read timeout above the longest sync wait", () => {
    const maxUpload = defaults.MAX_UPLOAD_BYTES!.default!;
    const bodyLimit = amount(directive(conf, 'client_max_body_size'), SIZE_UNITS);
    // Above the file limit (multipart framing and fields ride along), not so far that nginx buffers
    // much more than the API would ever accept.
    expect(bodyLimit).toBeGreaterThan(maxUpload);
    expect(bodyLimit).toBeLessThanOrEqual(maxUpload + 2 * 1024 ** 2);

    const readTimeout = amount(directive(conf, 'proxy_read_timeout'), TIME_UNITS);
    expect(readTimeout).toBeGreaterThan(defaults.SYNC_WAIT_MAX_SECONDS!.default!);
    const bodyTimeout = amount(directive(conf, 'client_body_timeout'), TIME_UNITS);
    expect(bodyTimeout * 1000).toBeLessThanOrEqual(defaults.REQUEST_TIMEOUT_MS!.default!);
  });

  it('forwards the client and the request id, reuses upstream connections, retries only unsent requests', () => {
    expect(directive(conf, 'proxy_set_header X-Forwarded-For')).toBe('$proxy_add_x_forwarded_for');
    expect(directive(conf, 'proxy_set_header X-Forwarded-Proto')).toBe('$scheme');
    expect(directive(conf, 'proxy_set_header X-Request-Id')).toBe('$req_id');
    expect(directive(conf, 'proxy_http_version')).toBe('1.1');
    expect(directive(conf, 'proxy_set_header Connection')).toBe('""');
    expect(directive(conf, 'keepalive')).toMatch(/^\d+$/);
    // The API's keep-alive is 72 s: the side that closes idle connections first is nginx.
    expect(amount(directive(conf, 'keepalive_timeout'), TIME_UNITS)).toBeLessThan(72);
    // No non_idempotent: a POST that reached an instance is never sent to a second one.
    expect(directive(conf, 'proxy_next_upstream')).toBe('error timeout');
    expect(directive(conf, 'server')).toMatch(/ max_fails=\d+ fail_timeout=\d+s$/);
  });

  it('runs in compose in front of two API replicas, the only published entry', () => {
    const compose = parseYaml(read('docker-compose.yml')) as {
      services: Record<
        string,
        {
          ports?: string[];
          environment?: Record<string, string>;
          volumes?: string[];
          deploy?: { replicas?: number };
        }
      >;
    };
    const { api, nginx } = compose.services;
    expect(api?.deploy?.replicas).toBe(2);
    expect(api?.ports).toBeUndefined();
    expect(api?.environment?.TRUST_PROXY).toMatch(/^\$\{TRUST_PROXY:-1\}$/);
    expect(nginx?.ports).toEqual([`${defaults.PORT!.default}:${nginx?.environment?.LISTEN_PORT}`]);
    expect(nginx?.environment?.API_UPSTREAM).toBe(`api:${defaults.PORT!.default}`);
    expect(nginx?.volumes).toContain(
      './deploy/nginx/nginx.conf.template:/etc/nginx/templates/nginx.conf.template:ro',
    );
  });
});
