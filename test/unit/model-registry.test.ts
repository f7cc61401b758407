import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelRegistry, RegistryError } from '../../shared/models/registry.js';

const REGISTRY_FILE = resolve(import.meta.dirname, '../../models/models.yaml');

const tempDir = mkdtempSync(join(tmpdir(), 'model-registry-test-'));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));

/** A minimal valid model entry; each test breaks one thing. */
function entry(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    task: 'classification',
    backends: { onnx: {} },
    input: { width: 8, height: 8 },
    ...overrides,
  };
}

function failure(document: unknown, path = join(tempDir, 'models.yaml')): RegistryError {
  try {
    ModelRegistry.fromDocument(document, path);
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    return err as RegistryError;
  }
  throw new Error('expected the registry to be rejected');
}

describe('the bundled registry (models/models.yaml)', () => {
  const registry = ModelRegistry.load(REGISTRY_FILE);

  it('declares the seed models and the text-orientation model', () => {
    expect(registry.list().map((m) => m.name)).toEqual(
      expect.arrayContaining([
        'text_orientation',
        'mobilenet_v3',
        'yolov8n',
        'image_classifier',
        'object_detector',
        'face_recognition',
      ]),
    );
  });

  it('loads labels from the labels files', () => {
    const imagenet = registry.get('mobilenet_v3')!.labels!;
    expect(imagenet).toHaveLength(1000);
    expect(imagenet.every((l) => l.length > 0 && l === l.trim())).toBe(true);
    expect(registry.get('image_classifier')!.labels).toEqual(imagenet);

    const coco = registry.get('yolov8n')!.labels!;
    expect(coco).toHaveLength(80);
    expect(coco[0]).toBe('person');
    expect(registry.get('object_detector')!.labels).toEqual(coco);

    expect(registry.get('text_orientation')!.labels).toEqual(['0', '180']);
  });

  it('describes text_orientation as PaddleOCR expects it', () => {
    const model = registry.get('text_orientation')!;
    expect(model.task).toBe('classification');
    expect(model.backends.onnx?.source).toMatch(
      /^npm:@gutenye\/ocr-models\/.*ch_ppocr_mobile_v2\.0_cls_infer\.onnx$/,
    );
    expect(model.input).toMatchObject({
      width: 192,
      height: 48,
      layout: 'NCHW',
      channel_order: 'BGR',
      resize: 'fit_height',
      pad_value: 127.5,
    });
    expect(model.postprocess.activation).toBe('none');
  });

  it('applies defaults to what the file leaves out', () => {
    const detector = registry.get('object_detector')!;
    expect(detector.postprocess).toEqual({
      format: 'yolov8',
      activation: 'softmax',
      top_k: 5,
      score_threshold: 0.25,
      iou_threshold: 0.45,
      max_detections: 100,
    });
    expect(detector.backends.tensorflow?.encoding).toBe('tensor');

    // face_recognition has no postprocess block at all
    const faces = registry.get('face_recognition')!;
    expect(faces.postprocess.top_k).toBe(5);
    expect(faces.input.channel_order).toBe('RGB');
    expect(faces.input.pad_value).toBe(0);
    expect(faces.labels).toBeUndefined();
  });

  it('servedBy() lists the models of one backend, in registry order', () => {
    expect(registry.servedBy('onnx').map((m) => m.name)).toEqual([
      'text_orientation',
      'mobilenet_v3',
      'yolov8n',
    ]);
    expect(registry.servedBy('tensorflow').map((m) => m.name)).toEqual([
      'image_classifier',
      'object_detector',
      'face_recognition',
    ]);
  });

  it('get() answers undefined for an unknown model', () => {
    expect(registry.get('nope')).toBeUndefined();
  });
});

describe('ModelRegistry.fromDocument', () => {
  it('fills in every input and postprocess default', () => {
    const registry = ModelRegistry.fromDocument({ models: { m1: entry() } });
    const model = registry.get('m1')!;
    expect(model.input).toEqual({
      width: 8,
      height: 8,
      layout: 'NCHW',
      channel_order: 'RGB',
      scale: 1 / 255,
      resize: 'stretch',
      pad_value: 0,
      crop_ratio: 0.875,
    });
    expect(model.postprocess).toEqual({
      activation: 'softmax',
      top_k: 5,
      score_threshold: 0.25,
      iou_threshold: 0.45,
      max_detections: 100,
    });
  });

  it('keeps values the file gives over the defaults', () => {
    const registry = ModelRegistry.fromDocument({
      models: { m1: entry({ postprocess: { top_k: 3, activation: 'sigmoid' } }) },
    });
    expect(registry.get('m1')!.postprocess).toMatchObject({ top_k: 3, activation: 'sigmoid' });
  });

  it('servedBy() includes a model served by both backends in both lists', () => {
    const registry = ModelRegistry.fromDocument({
      models: {
        a: entry({ backends: { tensorflow: {} } }),
        b: entry({ backends: { onnx: {}, tensorflow: {} } }),
        c: entry(),
      },
    });
    expect(registry.servedBy('onnx').map((m) => m.name)).toEqual(['b', 'c']);
    expect(registry.servedBy('tensorflow').map((m) => m.name)).toEqual(['a', 'b']);
  });

  it('resolves a source file path relative to the registry file; npm: sources stay as given', () => {
    const registry = ModelRegistry.fromDocument(
      {
        models: {
          local: entry({ backends: { onnx: { source: 'weights/model.onnx' } } }),
          packaged: entry({ backends: { onnx: { source: 'npm:pkg/model.onnx' } } }),
        },
      },
      join(tempDir, 'models.yaml'),
    );
    expect(registry.get('local')!.backends.onnx!.source).toBe(join(tempDir, 'weights/model.onnx'));
    expect(registry.get('packaged')!.backends.onnx!.source).toBe('npm:pkg/model.onnx');
  });

  it('hands out frozen definitions and leaves the given document untouched', () => {
    const document = { models: { m1: entry() } };
    const before = structuredClone(document);
    const model = ModelRegistry.fromDocument(document).get('m1')!;
    expect(document).toEqual(before);
    expect(Object.isFrozen(model.input)).toBe(true);
    expect(Object.isFrozen(model.postprocess)).toBe(true);
    expect(() => {
      (model.input as { width: number }).width = 999;
    }).toThrow(TypeError);
  });

  it('reads a labels file relative to the registry file, skipping blank lines', () => {
    writeFileSync(join(tempDir, 'colours.txt'), 'red\r\n\n  green \nblue\n\n');
    const registry = ModelRegistry.fromDocument(
      { models: { m1: entry({ labels_file: 'colours.txt' }) } },
      join(tempDir, 'models.yaml'),
    );
    expect(registry.get('m1')!.labels).toEqual(['red', 'green', 'blue']);
  });
});

describe('registry errors name the model and the field', () => {
  it('a value of the wrong type', () => {
    const err = failure({ models: { m1: entry({ input: { width: 'big', height: 8 } }) } });
    expect(err.message).toContain('model "m1": input.width');
    expect(err.message).toContain('integer');
  });

  it('an unknown field', () => {
    const err = failure({ models: { m1: entry({ colour: 'red' }) } });
    expect(err.message).toContain('model "m1"');
    expect(err.message).toContain('"colour"');
  });

  it('an unknown field inside input', () => {
    const err = failure({ models: { m1: entry({ input: { width: 8, height: 8, sizee: 3 } }) } });
    expect(err.message).toContain('model "m1": input');
    expect(err.message).toContain('"sizee"');
  });

  it('an unknown task, with the allowed values, in one line', () => {
    const err = failure({ models: { m1: entry({ task: 'segmentation' }) } });
    expect(err.message).toContain('model "m1": task');
    expect(err.message).toContain('classification, detection, embedding, raw');
    expect(err.message.split('\n')).toHaveLength(2);
  });

  it('missing backends', () => {
    const err = failure({
      models: { m1: { task: 'classification', input: { width: 8, height: 8 } } },
    });
    expect(err.message).toContain('model "m1"');
    expect(err.message).toContain('backends');
  });

  it('empty backends', () => {
    const err = failure({ models: { m1: entry({ backends: {} }) } });
    expect(err.message).toContain('model "m1": backends');
  });

  it('an unknown backend', () => {
    const err = failure({ models: { m1: entry({ backends: { torch: {} } }) } });
    expect(err.message).toContain('model "m1": backends');
    expect(err.message).toContain('"torch"');
  });

  it('a postprocess value out of range', () => {
    const err = failure({ models: { m1: entry({ postprocess: { top_k: 0 } }) } });
    expect(err.message).toContain('model "m1": postprocess.top_k');
  });

  it('a detection model without postprocess.format', () => {
    const err = failure({ models: { det: entry({ task: 'detection' }) } });
    expect(err.message).toContain('model "det"');
    expect(err.message).toContain('postprocess.format');
  });

  it('letterbox on a model that is not a detector', () => {
    const err = failure({
      models: { m1: entry({ input: { width: 8, height: 8, resize: 'letterbox' } }) },
    });
    expect(err.message).toContain('model "m1"');
    expect(err.message).toContain('letterbox');
  });

  it('both labels and labels_file', () => {
    writeFileSync(join(tempDir, 'two.txt'), 'a\nb\n');
    const err = failure({ models: { m1: entry({ labels: ['a', 'b'], labels_file: 'two.txt' }) } });
    expect(err.message).toContain('model "m1"');
    expect(err.message).toMatch(/labels.*labels_file/);
  });

  it('a labels_file that does not exist, with its resolved path', () => {
    const err = failure({ models: { m1: entry({ labels_file: 'missing/labels.txt' }) } });
    expect(err.message).toContain('model "m1"');
    expect(err.message).toContain(join(tempDir, 'missing/labels.txt'));
  });

  it('an invalid model name', () => {
    const err = failure({ models: { 'bad name!': entry() } });
    expect(err.message).toContain('bad name!');
  });

  it('every bad model at once', () => {
    const err = failure({
      models: {
        first: entry({ input: { width: 0, height: 8 } }),
        second: entry({ task: 'nope' }),
      },
    });
    expect(err.message).toContain('model "first": input.width');
    expect(err.message).toContain('model "second": task');
  });

  it('a document that is not a registry', () => {
    expect(failure(42).message).toContain('top level');
    expect(failure({}).message).toContain('models');
    expect(failure(null).message).toContain('top level');
  });
});

describe('ModelRegistry.load', () => {
  it('names a file that cannot be read', () => {
    const path = join(tempDir, 'absent.yaml');
    expect(() => ModelRegistry.load(path)).toThrow(RegistryError);
    expect(() => ModelRegistry.load(path)).toThrow(path);
  });

  it('names a file that is not valid YAML', () => {
    const path = join(tempDir, 'broken.yaml');
    writeFileSync(path, 'models:\n  m1: [unclosed\n    task: {\n');
    expect(() => ModelRegistry.load(path)).toThrow(RegistryError);
    expect(() => ModelRegistry.load(path)).toThrow(/broken\.yaml is not valid/);
  });

  it('reads a .json registry as JSON', () => {
    const path = join(tempDir, 'models.json');
    writeFileSync(path, JSON.stringify({ models: { j1: entry() } }));
    expect(ModelRegistry.load(path).get('j1')?.task).toBe('classification');

    const bad = join(tempDir, 'bad.json');
    writeFileSync(bad, '{"models": ');
    expect(() => ModelRegistry.load(bad)).toThrow(/bad\.json is not valid/);
  });

  it('puts the file path in validation errors', () => {
    const path = join(tempDir, 'invalid.yaml');
    writeFileSync(
      path,
      'models:\n  m1:\n    task: classification\n    input: {width: 8, height: 8}\n',
    );
    expect(() => ModelRegistry.load(path)).toThrow(path);
  });
});

describe('routing', () => {
  it('defaults to priority with backend choice allowed', () => {
    const registry = ModelRegistry.fromDocument({ models: { m: entry() } });
    expect(registry.get('m')!.routing).toEqual({
      strategy: 'priority',
      allow_backend_choice: true,
    });
  });

  it('refuses weights for a backend the model does not have', () => {
    const err = failure({
      models: { m: entry({ routing: { strategy: 'weighted', weights: { tensorflow: 2 } } }) },
    });
    expect(err.message).toContain('model "m"');
    expect(err.message).toContain('routing.weights names "tensorflow"');
  });

  it('needs weights for the weighted strategy, and knows only the four strategies', () => {
    expect(
      failure({ models: { m: entry({ routing: { strategy: 'weighted' } }) } }).message,
    ).toContain('routing.weights is required');
    expect(
      failure({ models: { m: entry({ routing: { strategy: 'fastest' } }) } }).message,
    ).toContain('priority, round_robin, least_loaded, weighted');
  });
});
