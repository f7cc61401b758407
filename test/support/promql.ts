/**
 * What the Prometheus assets (Grafana dashboard, alert rules) are checked against: the metric
 * selectors of a PromQL expression, read with Prometheus' own grammar, and every series the API
 * and worker processes export.
 */
import { parser } from '@prometheus-io/lezer-promql';
import { Registry } from 'prom-client';
import { expect } from 'vitest';
import { createApiMetrics } from '../../api/metrics/api-metrics.js';
import {
  createMetricsRegistry,
  createWebhookMetrics,
  createWorkerMetrics,
} from '../../shared/metrics/index.js';

export interface Selector {
  metric: string;
  labels: string[];
}

/** The metric selectors of a PromQL expression, read with Prometheus' own grammar. */
export function selectors(source: string): Selector[] {
  const tree = parser.parse(source);
  const found: Selector[] = [];
  const errors: string[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError)
        errors.push(`at ${node.from}: ${source.slice(node.from, node.from + 20)}`);
      if (node.name !== 'VectorSelector') return;
      const metric = node.node.getChild('Identifier');
      const labels = node.node
        .getChild('LabelMatchers')
        ?.getChildren('UnquotedLabelMatcher')
        .map((m) => m.getChild('LabelName'))
        .map((n) => (n ? source.slice(n.from, n.to) : ''));
      if (metric)
        found.push({ metric: source.slice(metric.from, metric.to), labels: labels ?? [] });
    },
  });
  expect(errors, `PromQL does not parse: ${source}`).toEqual([]);
  return found;
}

/** Labels Prometheus adds to every scraped series. */
export const TARGET_LABELS = ['job', 'instance', 'pool'];

/** Every series name the API and worker processes export, with the labels each may carry. */
export function exportedSeries(): Map<string, Set<string>> {
  const api = createApiMetrics(createMetricsRegistry(), { models: ['m'] });
  const worker = createWorkerMetrics(new Registry(), { backend: 'onnx', models: ['m'] });
  const webhooks = createWebhookMetrics(new Registry());
  const names = new Map<string, Set<string>>();
  for (const register of [api.register, worker.register, webhooks.register]) {
    for (const metric of register.getMetricsAsArray()) {
      const { name, labelNames = [] } = metric as unknown as {
        name: string;
        labelNames?: string[];
      };
      const type = (metric as unknown as { type: string }).type;
      const labels = new Set([...labelNames, ...TARGET_LABELS]);
      if (type === 'histogram') {
        names.set(`${name}_bucket`, new Set([...labels, 'le']));
        names.set(`${name}_sum`, labels);
        names.set(`${name}_count`, labels);
      } else if (type === 'summary') {
        names.set(name, new Set([...labels, 'quantile']));
        names.set(`${name}_sum`, labels);
        names.set(`${name}_count`, labels);
      } else {
        names.set(name, labels);
      }
    }
  }
  return names;
}
