import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { createApiMetrics, QUEUE_STATES } from '../../api/metrics/api-metrics.js';
import { EnvSchema } from '../../shared/config/env-schema.js';
import { createMetricsRegistry } from '../../shared/metrics/index.js';
import { QueueName } from '../../shared/queues/index.js';

/**
 * No cluster runs where the tests do: the manifests are validated against the Kubernetes and KEDA
 * schemas (kubernetes-models), and the references between them, which no schema sees, are checked
 * here: selectors, config and secret keys, ports, probe paths, variable names, scale targets.
 */
const dir = fileURLToPath(new URL('../../deploy/k8s/', import.meta.url));
const kustomization = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as {
  resources: string[];
  secretGenerator: { name: string; envs: string[] }[];
};

type Labels = Record<string, string>;
interface Container {
  name: string;
  ports?: { name?: string; containerPort: number }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  env?: {
    name: string;
    valueFrom?: {
      configMapKeyRef?: { name: string; key: string };
      secretKeyRef?: { name: string; key: string };
    };
  }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
type Manifest = {
  kind: string;
  metadata: { name: string };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are plain data, read per kind below.
  spec?: any;
  data?: Record<string, string>;
};

const manifests: Manifest[] = kustomization.resources.flatMap((file) =>
  parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => d.toJS() as Manifest),
);
const ofKind = (kind: string) => manifests.filter((m) => m.kind === kind);
const deployments = ofKind('Deployment');
const containersOf = (deployment: Manifest): Container[] =>
  deployment.spec.template.spec.containers;
const podLabels = (deployment: Manifest): Labels => deployment.spec.template.metadata.labels;
const selects = (selector: Labels, labels: Labels) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/** The generated Secret's keys: from secrets.env, or its committed example when it is not there. */
function secretKeys(): Map<string, Set<string>> {
  return new Map(
    kustomization.secretGenerator.map(({ name, envs }) => {
      const keys = envs.flatMap((file) => {
        const path = existsSync(join(dir, file)) ? join(dir, file) : join(dir, `${file}.example`);
        return readFileSync(path, 'utf8')
          .split('\n')
          .filter((line) => /^[A-Z0-9_]+=/.test(line))
          .map((line) => line.split('=')[0]!);
      });
      return [name, new Set(keys)];
    }),
  );
}

const MODELS = {
  Namespace,
  ConfigMap,
  Deployment,
  Service,
  PodDisruptionBudget,
  ScaledObject,
} as const;

describe('deploy/k8s', () => {
  it('lists every manifest in kustomization.yaml, and each is valid for its kind', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
    for (const manifest of manifests) {
      const Model = MODELS[manifest.kind as keyof typeof MODELS];
      expect(Model, `a model for ${manifest.kind}`).toBeDefined();
      // Throws with the path of the first field the schema refuses.
      expect(() => new Model(manifest as never).validate(), manifest.metadata.name).not.toThrow();
    }
    // The secrets file is never committed: only its example is.
    for (const { envs } of kustomization.secretGenerator) {
      for (const file of envs) expect(existsSync(join(dir, `${file}.example`)), file).toBe(true);
    }
  });

  it('runs the API and each worker pool, each selecting its own pods only', () => {
    const names = deployments.map((d) => d.metadata.name).sort();
    expect(names).toEqual([
      'ai-gateway-api',
      'ai-gateway-worker-onnx',
      'ai-gateway-worker-tensorflow',
      'ai-gateway-worker-webhooks',
    ]);
    for (const deployment of deployments) {
      const selector = deployment.spec.selector.matchLabels as Labels;
      expect(selects(selector, podLabels(deployment)), deployment.metadata.name).toBe(true);
      const others = deployments.filter((d) => d !== deployment && selects(selector, podLabels(d)));
      expect(
        others.map((d) => d.metadata.name),
        deployment.metadata.name,
      ).toEqual([]);
    }
  });

  it('points every Service and the PodDisruptionBudget at pods, on ports their containers open', () => {
    for (const service of ofKind('Service')) {
      const selected = deployments.filter((d) => selects(service.spec.selector, podLabels(d)));
      expect(selected.length, service.metadata.name).toBeGreaterThan(0);
      for (const { targetPort } of service.spec.ports as { targetPort: string | number }[]) {
        for (const deployment of selected) {
          const ports = containersOf(deployment).flatMap((c) => c.ports ?? []);
          const open = ports.some((p) => p.name === targetPort || p.containerPort === targetPort);
          expect(
            open,
            `${service.metadata.name} -> ${deployment.metadata.name}:${targetPort}`,
          ).toBe(true);
        }
      }
    }
    const [pdb] = ofKind('PodDisruptionBudget');
    const api = deployments.find((d) => d.metadata.name === 'ai-gateway-api')!;
    expect(selects(pdb!.spec.selector.matchLabels, podLabels(api))).toBe(true);
    expect(pdb!.spec.minAvailable).toBeLessThan(api.spec.replicas);
  });

  it('refers only to config and secret keys that exist, and sets only variables the config knows', () => {
    const configMaps = new Map(ofKind('ConfigMap').map((c) => [c.metadata.name, c.data ?? {}]));
    const secrets = secretKeys();
    const known = new Set(Object.keys(EnvSchema.properties));
    for (const [name, keys] of secrets) {
      expect(
        [...keys].filter((k) => !known.has(k)),
        `secret ${name}`,
      ).toEqual([]);
    }
    for (const [name, data] of configMaps) {
      expect(
        Object.keys(data).filter((k) => !known.has(k)),
        `ConfigMap ${name}`,
      ).toEqual([]);
    }
    for (const container of deployments.flatMap(containersOf)) {
      for (const from of container.envFrom ?? []) {
        if (from.configMapRef) expect(configMaps.has(from.configMapRef.name)).toBe(true);
        if (from.secretRef) expect(secrets.has(from.secretRef.name)).toBe(true);
      }
      for (const { name, valueFrom } of container.env ?? []) {
        expect(known.has(name), `${container.name}: ${name}`).toBe(true);
        const configRef = valueFrom?.configMapKeyRef;
        if (configRef) expect(configMaps.get(configRef.name), name).toHaveProperty(configRef.key);
        const secretRef = valueFrom?.secretKeyRef;
        if (secretRef) expect(secrets.get(secretRef.name)?.has(secretRef.key), name).toBe(true);
      }
    }
  });

  it('gives each role only the secrets it uses', () => {
    const secretNames = (name: string) =>
      deployments
        .filter((d) => d.metadata.name === name)
        .flatMap(containersOf)
        .flatMap((c) => c.env ?? [])
        .filter((e) => e.valueFrom?.secretKeyRef)
        .map((e) => e.name);
    // The webhooks worker signs with the secrets derived from it; the API shows each tenant its own.
    expect(secretNames('ai-gateway-worker-webhooks')).toContain('WEBHOOK_SECRET');
    expect(secretNames('ai-gateway-api')).toContain('WEBHOOK_SECRET');
    for (const other of ['ai-gateway-worker-onnx', 'ai-gateway-worker-tensorflow']) {
      expect(secretNames(other), other).not.toContain('WEBHOOK_SECRET');
    }
    expect(secretNames('ai-gateway-worker-onnx')).not.toContain('API_KEYS');
  });

  it('probes the API on /health/live and /health/ready, the workers on their metrics port', () => {
    const api = containersOf(deployments.find((d) => d.metadata.name === 'ai-gateway-api')!)[0]!;
    expect(api.livenessProbe?.httpGet?.path).toBe('/health/live');
    expect(api.readinessProbe?.httpGet?.path).toBe('/health/ready');
    const defaults = EnvSchema.properties as Record<string, { default?: unknown }>;
    expect(api.ports?.find((p) => p.name === 'http')?.containerPort).toBe(defaults.PORT!.default);
    for (const deployment of deployments.filter((d) => d.metadata.name.includes('worker'))) {
      const [worker] = containersOf(deployment);
      const port = worker!.ports?.find((p) => p.name === worker!.livenessProbe?.httpGet?.port);
      expect(port?.containerPort, deployment.metadata.name).toBe(
        defaults.WORKER_METRICS_PORT!.default,
      );
      expect(worker!.livenessProbe?.httpGet?.path).toBe('/metrics');
    }
  });

  it('sets resource requests and limits on every container', () => {
    for (const container of deployments.flatMap(containersOf)) {
      expect(Object.keys(container.resources?.requests ?? {}).sort(), container.name).toEqual([
        'cpu',
        'memory',
      ]);
      expect(Object.keys(container.resources?.limits ?? {}).sort(), container.name).toEqual([
        'cpu',
        'memory',
      ]);
    }
  });

  it('scales each worker pool with KEDA on the depth of its own queue, as the API exports it', async () => {
    const scaled = ofKind('ScaledObject');
    const workers = deployments.filter((d) => d.metadata.name.includes('worker'));
    expect(scaled.map((s) => s.spec.scaleTargetRef.name).sort()).toEqual(
      workers.map((d) => d.metadata.name).sort(),
    );
    const register = createMetricsRegistry();
    createApiMetrics(register, { models: [] });
    const exported = new Set(register.getMetricsAsArray().map((m) => m.name));

    const queues = new Set<string>();
    for (const object of scaled) {
      const deployment = deployments.find(
        (d) => d.metadata.name === object.spec.scaleTargetRef.name,
      );
      // KEDA owns the replica count: a fixed one in the Deployment would fight it on every apply.
      expect(deployment?.spec.replicas, object.metadata.name).toBeUndefined();
      expect(object.spec.minReplicaCount).toBeLessThanOrEqual(1);
      const [trigger] = object.spec.triggers as {
        type: string;
        metadata: Record<string, string>;
      }[];
      expect(trigger?.type).toBe('prometheus');
      expect(trigger?.metadata.activationThreshold).toBe('0');
      const query = trigger!.metadata.query!;
      const metric = /([a-z_]+)\{/.exec(query)?.[1];
      expect(exported.has(metric!), `${metric} is exported by the API`).toBe(true);
      const queue = /queue="([^"]+)"/.exec(query)?.[1];
      expect(Object.values(QueueName)).toContain(queue);
      queues.add(queue!);
      const states = /state=~"([^"]+)"/.exec(query)?.[1]?.split('|') ?? [];
      for (const state of states) expect(QUEUE_STATES).toContain(state);
      // Every state in which a job still needs a worker: waiting, prioritised (async jobs),
      // delayed (retries), running.
      expect(states.sort()).toEqual(['active', 'delayed', 'prioritized', 'waiting']);
    }
    expect(queues.size).toBe(scaled.length);
    // Every pool idles at zero; the API queues for the inference pools meanwhile, so the first
    // queued job wakes them (AUTOSCALED_BACKENDS names each one).
    for (const object of scaled) expect(object.spec.minReplicaCount, object.metadata.name).toBe(0);
    const autoscaled = ofKind('ConfigMap')
      .flatMap((c) => Object.entries((c.data ?? {}) as Record<string, string>))
      .find(([name]) => name === 'AUTOSCALED_BACKENDS')?.[1];
    expect(autoscaled?.split(',').sort()).toEqual(['onnx', 'tensorflow']);
  });
});
