import { describe, expect, it } from 'vitest';
import { BackendSelector, type Candidate } from '../../api/routing/backend-selector.js';
import type { BackendKind, ModelDefinition } from '../../shared/models/model-spec.js';
import { ModelRegistry } from '../../shared/models/registry.js';

const input = { width: 8, height: 8 };
const registry = ModelRegistry.fromDocument({
  models: {
    by_priority: { task: 'raw', backends: { tensorflow: {}, onnx: {} }, input },
    by_turns: {
      task: 'raw',
      backends: { tensorflow: {}, onnx: {} },
      input,
      routing: { strategy: 'round_robin' },
    },
    by_load: {
      task: 'raw',
      backends: { tensorflow: {}, onnx: {} },
      input,
      routing: { strategy: 'least_loaded' },
    },
    by_weight: {
      task: 'raw',
      backends: { tensorflow: {}, onnx: {} },
      input,
      routing: { strategy: 'weighted', weights: { onnx: 3, tensorflow: 1 } },
    },
    fallback_only: {
      task: 'raw',
      backends: { tensorflow: {}, onnx: {} },
      input,
      routing: { strategy: 'weighted', weights: { onnx: 0, tensorflow: 1 } },
    },
  },
});
const model = (name: string): ModelDefinition => registry.get(name)!;
const both: Candidate[] = [{ backend: 'tensorflow' }, { backend: 'onnx' }];

function picks(selector: BackendSelector, name: string, candidates: Candidate[], n: number) {
  return Array.from({ length: n }, () => selector.choose(model(name), candidates));
}

describe('BackendSelector', () => {
  it('priority: always the first candidate (registry order)', () => {
    expect(picks(new BackendSelector(), 'by_priority', both, 4)).toEqual(
      Array(4).fill('tensorflow'),
    );
  });

  it('round_robin: each candidate in turn, per model', () => {
    const selector = new BackendSelector();
    expect(picks(selector, 'by_turns', both, 4)).toEqual([
      'tensorflow',
      'onnx',
      'tensorflow',
      'onnx',
    ]);
    // A model's turns do not move another model's.
    expect(selector.choose(model('by_priority'), both)).toBe('tensorflow');
    expect(selector.choose(model('by_turns'), both)).toBe('tensorflow');
  });

  it('least_loaded: the candidate with the fewest jobs per worker slot; ties to the earlier', () => {
    const selector = new BackendSelector();
    const load = (tensorflow: number, onnx: number): Candidate[] => [
      { backend: 'tensorflow', load: tensorflow },
      { backend: 'onnx', load: onnx },
    ];
    expect(selector.choose(model('by_load'), load(4, 1))).toBe('onnx');
    expect(selector.choose(model('by_load'), load(0.5, 2))).toBe('tensorflow');
    expect(selector.choose(model('by_load'), load(1, 1))).toBe('tensorflow');
    // Unknown load counts as the most loaded.
    expect(
      selector.choose(model('by_load'), [{ backend: 'tensorflow' }, { backend: 'onnx', load: 9 }]),
    ).toBe('onnx');
  });

  it('weighted: shares in proportion to the weights, evenly spread', () => {
    const selector = new BackendSelector();
    const sequence = picks(selector, 'by_weight', both, 8);
    const count = (b: BackendKind) => sequence.filter((s) => s === b).length;
    expect(count('onnx')).toBe(6);
    expect(count('tensorflow')).toBe(2);
    // Smooth: never more than three onnx picks in a row with weights 3:1.
    expect(sequence.join(',')).not.toContain('onnx,onnx,onnx,onnx');
  });

  it('weighted: weight 0 is a fallback, chosen only when it is the only candidate', () => {
    const selector = new BackendSelector();
    expect(picks(selector, 'fallback_only', both, 5)).toEqual(Array(5).fill('tensorflow'));
    expect(selector.choose(model('fallback_only'), [{ backend: 'onnx' }])).toBe('onnx');
  });
});
