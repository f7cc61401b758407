import { describe, expect, it } from 'vitest';
import {
  predictBody,
  readPredictOutput,
} from '../../workers/backends/tf-serving/tf-serving.tensors.js';

const tensor = { data: Float32Array.from([0.5, 1, 2, 3, 4, 0.25]), dims: [2, 3] };

describe('TF Serving predict request bodies', () => {
  it('row form: one instance object per batch item, the signature named', () => {
    const body = JSON.parse(
      predictBody({
        signatureName: 'serving_default',
        inputName: 'x',
        format: 'row',
        input: tensor,
      }).toString(),
    );
    expect(body).toEqual({
      signature_name: 'serving_default',
      instances: [{ x: [0.5, 1, 2] }, { x: [3, 4, 0.25] }],
    });
  });

  it('columnar form: the whole batch under the input name', () => {
    const body = JSON.parse(
      predictBody({
        signatureName: 'predict',
        inputName: 'x',
        format: 'columnar',
        input: tensor,
      }).toString(),
    );
    expect(body).toEqual({
      signature_name: 'predict',
      inputs: {
        x: [
          [0.5, 1, 2],
          [3, 4, 0.25],
        ],
      },
    });
  });

  it('encoded images go as {"b64": ...} in both forms', () => {
    const image = Buffer.from([0xff, 0xd8, 0xff, 0x00, 0x01]);
    const input = { encoded: [image] };
    const row = JSON.parse(
      predictBody({
        signatureName: 's',
        inputName: 'image_bytes',
        format: 'row',
        input,
      }).toString(),
    );
    expect(row.instances).toEqual([{ image_bytes: { b64: image.toString('base64') } }]);
    const columnar = JSON.parse(
      predictBody({
        signatureName: 's',
        inputName: 'image_bytes',
        format: 'columnar',
        input,
      }).toString(),
    );
    expect(columnar.inputs).toEqual({ image_bytes: [{ b64: image.toString('base64') }] });
  });
});

describe('TF Serving predict answers', () => {
  it('row answers: predictions with the batch first', () => {
    const output = readPredictOutput('{"predictions": [[0.1, 0.9], [0.7, 0.3]]}', 'scores');
    expect(output.dims).toEqual([2, 2]);
    expect(Array.from(output.data)).toEqual(Array.from(Float32Array.from([0.1, 0.9, 0.7, 0.3])));
  });

  it('row answers of a signature with several outputs: the named one from each instance', () => {
    const body = JSON.stringify({
      predictions: [
        { scores: [0.2, 0.8], classes: 1 },
        { scores: [0.6, 0.4], classes: 0 },
      ],
    });
    const output = readPredictOutput(body, 'scores');
    expect(output.dims).toEqual([2, 2]);
    expect(output.data[1]).toBeCloseTo(0.8);
    expect(() => readPredictOutput(body, 'boxes')).toThrow('no output "boxes"');
  });

  it('columnar answers: outputs, bare or by name', () => {
    expect(readPredictOutput('{"outputs": [[1, 2, 3]]}', 'y').dims).toEqual([1, 3]);
    const named = readPredictOutput('{"outputs": {"y": [[1, 2]], "z": [[3]]}}', 'y');
    expect(Array.from(named.data)).toEqual([1, 2]);
  });

  it('an answer of neither form is an error', () => {
    expect(() => readPredictOutput('{"result": []}', 'y')).toThrow(/neither/);
  });
});
