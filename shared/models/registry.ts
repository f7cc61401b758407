import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import type { Static } from '@sinclair/typebox';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import {
  type BackendKind,
  BatchingSpec,
  type ModelDefinition,
  PostprocessSpec,
  RegistryFile,
  RoutingSpec,
} from './model-spec.js';

export class RegistryError extends Error {
  override name = 'RegistryError';
}

const ajv = new Ajv({ allErrors: true, useDefaults: true });
const validateFile = ajv.compile<Static<typeof RegistryFile>>(RegistryFile);
const validatePostprocess = ajv.compile(PostprocessSpec);
const validateRouting = ajv.compile(RoutingSpec);
const validateBatching = ajv.compile(BatchingSpec);

/** The models this deployment serves, read once from the registry file (`MODELS_CONFIG`). */
export class ModelRegistry {
  private readonly models: ReadonlyMap<string, ModelDefinition>;

  constructor(models: Iterable<ModelDefinition>) {
    this.models = new Map([...models].map((m) => [m.name, deepFreeze(m)]));
  }

  get(name: string): ModelDefinition | undefined {
    return this.models.get(name);
  }

  list(): ModelDefinition[] {
    return [...this.models.values()];
  }

  /** Models the given backend serves, in registry order. */
  servedBy(backend: BackendKind): ModelDefinition[] {
    return this.list().filter((m) => m.backends[backend] !== undefined);
  }

  /** Reads, validates and resolves a registry file; errors name the model and the field. */
  static load(path: string): ModelRegistry {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new RegistryError(`Cannot read the model registry ${path}: ${(err as Error).message}`);
    }
    let document: unknown;
    try {
      document = extname(path) === '.json' ? JSON.parse(text) : parseYaml(text);
    } catch (err) {
      throw new RegistryError(`${path} is not valid YAML/JSON: ${(err as Error).message}`);
    }
    return ModelRegistry.fromDocument(document, path);
  }

  static fromDocument(input: unknown, path = 'registry'): ModelRegistry {
    // Validation fills in defaults; the caller's object stays as it was.
    const document = structuredClone(input);
    if (!validateFile(document)) {
      throw new RegistryError(
        `${path} is invalid:\n  ${describeErrors(validateFile.errors ?? []).join('\n  ')}`,
      );
    }
    const baseDir = dirname(resolve(path));
    return new ModelRegistry(
      Object.entries(document.models).map(([name, spec]) => {
        const fail = (message: string): never => {
          throw new RegistryError(`${path}: model "${name}": ${message}`);
        };
        const postprocess = { ...spec.postprocess } as PostprocessSpec;
        validatePostprocess(postprocess); // fills in the defaults of an absent block

        if (spec.labels && spec.labels_file) fail('give either labels or labels_file, not both');
        let labels = spec.labels;
        if (spec.labels_file) {
          const file = resolve(baseDir, spec.labels_file);
          try {
            labels = readFileSync(file, 'utf8')
              .split('\n')
              .map((l) => l.trim())
              .filter(Boolean);
          } catch (err) {
            fail(`labels_file ${file} cannot be read: ${(err as Error).message}`);
          }
        }
        const routing = { ...spec.routing } as RoutingSpec;
        validateRouting(routing); // defaults of an absent block
        const served = Object.keys(spec.backends);
        for (const backend of Object.keys(routing.weights ?? {})) {
          if (!served.includes(backend)) {
            fail(`routing.weights names "${backend}", which is not one of its backends`);
          }
        }
        const batching = { ...spec.batching } as BatchingSpec;
        validateBatching(batching); // defaults of an absent block
        if (routing.strategy === 'weighted' && !routing.weights) {
          fail('routing.weights is required for the weighted strategy');
        }
        if (spec.task === 'detection' && !postprocess.format) {
          fail('postprocess.format is required for a detection model (e.g. yolov8)');
        }
        if (spec.input.resize === 'letterbox' && spec.task !== 'detection') {
          // Letterbox offsets only matter for boxes; elsewhere it is almost always a mistake.
          fail('input.resize "letterbox" is meant for detection models');
        }
        // A file path in `source` is relative to the registry file, like labels_file.
        const onnx = spec.backends.onnx;
        if (onnx?.source && !onnx.source.startsWith('npm:')) {
          onnx.source = resolve(baseDir, onnx.source);
        }
        return {
          name,
          // A blank description is none.
          description: spec.description || undefined,
          task: spec.task,
          backends: spec.backends,
          input: spec.input,
          labels,
          postprocess,
          routing,
          batching,
        } satisfies ModelDefinition;
      }),
    );
  }
}

function describeErrors(errors: ErrorObject[]): string[] {
  return [
    ...new Set(
      errors.map((e) => {
        const [, models, name, ...field] = e.instancePath.split('/');
        const where =
          models === 'models' && name
            ? `model "${name}"${field.length ? `: ${field.join('.')}` : ''}`
            : e.instancePath || 'top level';
        const extra =
          'allowedValues' in e.params
            ? `: ${(e.params.allowedValues as string[]).join(', ')}`
            : 'additionalProperty' in e.params
              ? ` ("${e.params.additionalProperty}")`
              : '';
        return `${where} ${e.message}${extra}`;
      }),
    ),
  ];
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
