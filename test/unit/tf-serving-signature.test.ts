import { describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../shared/models/registry.js';
import type {
  SignatureDef,
  TensorInfo,
} from '../../workers/backends/tf-serving/tf-serving.client.js';
import { checkSignature } from '../../workers/backends/tf-serving/tf-serving.signature.js';

const registry = ModelRegistry.fromDocument({
  models: {
    nhwc: {
      task: 'classification',
      backends: { tensorflow: { signature_name: 'serving_default' } },
      input: { width: 224, height: 224, layout: 'NHWC' },
    },
    bytes: {
      task: 'classification',
      backends: { tensorflow: { encoding: 'b64', input_name: 'image_bytes' } },
      input: { width: 224, height: 224, layout: 'NHWC' },
    },
  },
});
const nhwc = registry.get('nhwc')!;
const bytes = registry.get('bytes')!;

const t = (dtype: string, shape?: number[]): TensorInfo => ({ dtype, shape });
const found = (signature: SignatureDef | undefined, available = ['serving_default']) => ({
  signature,
  available,
});

describe('checking a TF Serving signature against the registry', () => {
  it('accepts a float input of the registry shape (any batch size) and names input and output', () => {
    const result = checkSignature(
      nhwc,
      nhwc.backends.tensorflow!,
      found({
        inputs: { input_1: t('DT_FLOAT', [-1, 224, 224, 3]) },
        outputs: { probs: t('DT_FLOAT', [-1, 1000]) },
      }),
    );
    expect(result).toEqual({
      ok: true,
      signature: { signatureName: 'serving_default', inputName: 'input_1', outputName: 'probs' },
    });
  });

  it('accepts unknown ranks and free dimensions', () => {
    const result = checkSignature(
      nhwc,
      nhwc.backends.tensorflow!,
      found({ inputs: { x: t('DT_FLOAT', [-1, -1, -1, 3]) }, outputs: { y: t('DT_FLOAT') } }),
    );
    expect(result.ok).toBe(true);
  });

  it('refuses a shape that does not fit, saying what the registry expects', () => {
    const result = checkSignature(
      nhwc,
      nhwc.backends.tensorflow!,
      found({ inputs: { x: t('DT_FLOAT', [-1, 3, 224, 224]) }, outputs: { y: t('DT_FLOAT') } }),
    );
    expect(result).toEqual({
      ok: false,
      reason:
        'signature "serving_default": input "x" has shape [-1, 3, 224, 224], the registry says [N, 224, 224, 3] (NHWC)',
    });
  });

  it('refuses a missing signature, listing the ones there are', () => {
    const result = checkSignature(nhwc, nhwc.backends.tensorflow!, found(undefined, ['predict']));
    expect(result).toMatchObject({
      ok: false,
      reason: expect.stringContaining('signatures: predict'),
    });
  });

  it('asks for names when a signature has several inputs or outputs', () => {
    const result = checkSignature(
      nhwc,
      nhwc.backends.tensorflow!,
      found({
        inputs: { x: t('DT_FLOAT', [-1, 224, 224, 3]) },
        outputs: { boxes: t('DT_FLOAT'), scores: t('DT_FLOAT') },
      }),
    );
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('set output_name') });
  });

  it('b64 models need a DT_STRING input; tensor models a DT_FLOAT one', () => {
    const ok = checkSignature(
      bytes,
      bytes.backends.tensorflow!,
      found({ inputs: { image_bytes: t('DT_STRING', [-1]) }, outputs: { y: t('DT_FLOAT') } }),
    );
    expect(ok.ok).toBe(true);
    const floatInput = checkSignature(
      bytes,
      bytes.backends.tensorflow!,
      found({
        inputs: { image_bytes: t('DT_FLOAT', [-1, 224, 224, 3]) },
        outputs: { y: t('DT_FLOAT') },
      }),
    );
    expect(floatInput).toMatchObject({
      ok: false,
      reason: expect.stringContaining('needs a DT_STRING'),
    });
    const stringInput = checkSignature(
      nhwc,
      nhwc.backends.tensorflow!,
      found({ inputs: { x: t('DT_STRING', [-1]) }, outputs: { y: t('DT_FLOAT') } }),
    );
    expect(stringInput).toMatchObject({
      ok: false,
      reason: expect.stringContaining('encoding: b64'),
    });
  });
});
