import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EnvSchema } from '../../shared/config/env-schema.js';
import { exportedSeries, selectors as promqlSelectors } from '../support/promql.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

interface Panel {
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(read('deploy/grafana/dashboards/ai-gateway.json')) as {
  uid: string;
  panels: Panel[];
};

/** Every query of the dashboard, with its panel's title. */
function queries(): { panel: string; expr: string }[] {
  const walk = (panels: Panel[]): { panel: string; expr: string }[] =>
    panels.flatMap((p) => [
      ...(p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
      ...walk(p.panels ?? []),
    ]);
  return walk(dashboard.panels);
}

/** Grafana's variables, replaced by values PromQL accepts. */
function withoutVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)/g, '5m').replace(/\$\w+/g, '.*');
}

const selectors = (expr: string) => promqlSelectors(withoutVariables(expr));

describe('Grafana dashboard', () => {
  it('queries only metrics the service exports, with labels they have', () => {
    const available = exportedSeries();
    const all = queries();
    expect(all.length).toBeGreaterThan(10);
    for (const { panel, expr } of all) {
      const found = selectors(expr);
      expect(found.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const { metric, labels } of found) {
        expect(available.has(metric), `${panel}: ${metric} is not exported`).toBe(true);
        for (const label of labels) {
          expect(
            available.get(metric)?.has(label),
            `${panel}: ${metric} has no label ${label}`,
          ).toBe(true);
        }
      }
    }
  });

  it('covers request rate, errors, latency per model, queue depth, batch size and backend health', () => {
    const used = new Set(queries().flatMap(({ expr }) => selectors(expr).map((s) => s.metric)));
    for (const metric of [
      'ai_gateway_requests_total',
      'ai_gateway_errors_total',
      'ai_gateway_request_duration_seconds_bucket',
      'ai_gateway_queue_jobs',
      'ai_gateway_batch_size_bucket',
      'ai_gateway_backend_workers',
      'ai_gateway_model_ready',
      'ai_gateway_circuit_state',
    ]) {
      expect(used.has(metric), metric).toBe(true);
    }
  });

  it('reads from the provisioned data source', () => {
    const provisioned = parseYaml(
      read('deploy/grafana/provisioning/datasources/prometheus.yml'),
    ) as {
      datasources: { uid: string; url: string }[];
    };
    const uids = new Set(provisioned.datasources.map((d) => d.uid));
    const walk = (panels: Panel[]): string[] =>
      panels.flatMap((p) => [
        ...(p.datasource ? [p.datasource.uid] : []),
        ...(p.targets ?? []).flatMap((t) => (t.datasource ? [t.datasource.uid] : [])),
        ...walk(p.panels ?? []),
      ]);
    for (const uid of walk(dashboard.panels)) expect(uids.has(uid), uid).toBe(true);
  });
});

describe('Prometheus scrape config', () => {
  it('scrapes the API on its port and the worker pools on WORKER_METRICS_PORT', () => {
    const config = parseYaml(read('deploy/prometheus/prometheus.yml')) as {
      scrape_configs: {
        job_name: string;
        metrics_path: string;
        dns_sd_configs: { names: string[]; port: number }[];
      }[];
    };
    const jobs = new Map(config.scrape_configs.map((c) => [c.job_name, c]));
    const defaults = EnvSchema.properties as Record<string, { default?: unknown }>;
    const api = jobs.get('ai-gateway-api');
    expect(api?.metrics_path).toBe('/metrics');
    expect(api?.dns_sd_configs[0]?.port).toBe(defaults.PORT?.default);
    const workers = jobs.get('ai-gateway-workers');
    expect(workers?.metrics_path).toBe('/metrics');
    expect(workers?.dns_sd_configs[0]?.port).toBe(defaults.WORKER_METRICS_PORT?.default);

    // The names are docker-compose services, so Prometheus finds every replica.
    const compose = parseYaml(read('docker-compose.yml')) as { services: Record<string, unknown> };
    for (const job of config.scrape_configs) {
      for (const name of job.dns_sd_configs.flatMap((d) => d.names)) {
        expect(Object.keys(compose.services), name).toContain(name);
      }
    }
    expect(Object.keys(compose.services)).toEqual(
      expect.arrayContaining(['prometheus', 'grafana']),
    );
  });
});
