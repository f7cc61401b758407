import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { exportedSeries, selectors } from '../support/promql.js';

const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}
const rules = (
  parseYaml(read('deploy/prometheus/alerts.yml')) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert);
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));

interface RulesTest {
  alert_rule_test: { alertname: string; exp_alerts: unknown[] }[];
}
const ruleTests = (parseYaml(read('deploy/prometheus/alerts.test.yml')) as { tests: RulesTest[] })
  .tests;

/** Series Prometheus makes itself rather than scrapes. */
const PROMETHEUS_SERIES = new Map([['up', new Set(['job', 'instance'])]]);

const INSTALL_HINT =
  'promtool is not installed: on Debian or Ubuntu `apt-get update && apt-get install -y prometheus` (it ships promtool; .ci/run installs it when missing)';

describe('Prometheus alert rules', () => {
  it('pass their promtool unit tests: series that fire and series that must not', async () => {
    const run = promisify(execFile)('promtool', ['test', 'rules', 'alerts.test.yml'], {
      cwd: DIR,
      timeout: 60_000,
    });
    const result = await run.catch((err: NodeJS.ErrnoException & { stdout?: string }) => {
      if (err.code === 'ENOENT') throw new Error(INSTALL_HINT);
      throw new Error(`promtool test rules failed:\n${err.stdout ?? ''}${err.message}`);
    });
    expect(result.stdout).toContain('SUCCESS');
  });

  it('cover what an operator needs, each alert tested firing', () => {
    expect(alerts.map((a) => a.alert).sort()).toEqual([
      'AiGatewayBackendNoWorker',
      'AiGatewayCircuitOpen',
      'AiGatewayHighErrorRatio',
      'AiGatewayHighLatencyP99',
      'AiGatewayQueueBacklogGrowing',
      'AiGatewayRedisUnavailable',
      'AiGatewayWebhookDeliveriesFailing',
      'AiGatewayWorkerPoolEmptyWithWork',
    ]);
    const evaluations = ruleTests.flatMap((t) => t.alert_rule_test);
    for (const { alert } of alerts) {
      const firing = evaluations.filter((e) => e.alertname === alert && e.exp_alerts.length > 0);
      expect(firing.length, `${alert} is never tested firing`).toBeGreaterThan(0);
    }
  });

  it('use only metrics the service exports, with labels they have', () => {
    const available = exportedSeries();
    for (const rule of rules) {
      const name = rule.alert ?? rule.record;
      for (const { metric, labels } of selectors(rule.expr)) {
        if (recorded.has(metric)) continue;
        const known = available.get(metric) ?? PROMETHEUS_SERIES.get(metric);
        expect(known, `${name}: ${metric} is not exported`).toBeDefined();
        for (const label of labels) {
          expect(known?.has(label), `${name}: ${metric} has no label ${label}`).toBe(true);
        }
      }
    }
  });

  it('are loaded by the compose stack: rule_files in prometheus.yml, the file mounted beside it', () => {
    const config = parseYaml(read('deploy/prometheus/prometheus.yml')) as { rule_files: string[] };
    expect(config.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
    const compose = parseYaml(read('docker-compose.yml')) as {
      services: { prometheus: { volumes: string[] } };
    };
    expect(compose.services.prometheus.volumes).toContain(
      './deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro',
    );
  });
});
