/**
 * A remote backend for the batching benchmark, in a process of its own so that its CPU is measured
 * apart from the gateway's: the TF Serving stand-in or the Open Inference Protocol stand-in from
 * `test/fixtures/`, on loopback, serving one generated classifier (a colour classifier of
 * `--size` x `--size` RGB input, batch dimension dynamic) as `--model` version 1.
 *
 *   node --import tsx bench/stand-in-process.ts --protocol tf|oip --model NAME [--size 224]
 *     [--compute-ms 0] [--compute-per-input-ms 0] [--tf-input tensor|b64]
 *
 * `--tf-input b64`: the TF Serving model's signature takes JPEG bytes (`{"b64": ...}`) and the
 * stand-in decodes and resizes them, as a SavedModel with decoding in its graph does.
 * `--compute-ms N --compute-per-input-ms M` give each call a model run of N ms plus M ms per input
 * of its batch, on one model instance (see StandInServer.modelCompute); 0 and 0 leave the stand-in
 * as the tests run it. Logs `stand-in listening on <port>` once it accepts calls; stops on SIGTERM
 * or SIGINT.
 */
import { parseArgs } from 'node:util';
import { OipV2StandIn } from '../test/fixtures/oip-v2-stand-in.js';
import { buildColourClassifier } from '../test/fixtures/onnx-models.js';
import { TfServingStandIn } from '../test/fixtures/tf-serving-stand-in.js';

const { values } = parseArgs({
  options: {
    protocol: { type: 'string' },
    model: { type: 'string', default: 'classifier' },
    size: { type: 'string', default: '224' },
    'compute-ms': { type: 'string', default: '0' },
    'compute-per-input-ms': { type: 'string', default: '0' },
    'tf-input': { type: 'string', default: 'tensor' },
  },
});
const { model } = values;
const size = Number(values.size);
const computeMs = Number(values['compute-ms']);
if (values.protocol !== 'tf' && values.protocol !== 'oip') {
  throw new Error(`--protocol must be tf or oip, got ${values.protocol}`);
}
const tfInput = values['tf-input'];
if (tfInput !== 'tensor' && tfInput !== 'b64') {
  throw new Error(`--tf-input must be tensor or b64, got ${tfInput}`);
}
if (!Number.isInteger(size) || size < 1) throw new Error(`--size: a positive integer, got ${size}`);
const perInputMs = Number(values['compute-per-input-ms']);
if (!(computeMs >= 0)) throw new Error(`--compute-ms: a number >= 0, got ${computeMs}`);
if (!(perInputMs >= 0)) {
  throw new Error(`--compute-per-input-ms: a number >= 0, got ${perInputMs}`);
}

// TensorFlow lays images out NHWC, ONNX exports NCHW: each stand-in gets its usual layout.
const standIn =
  values.protocol === 'tf'
    ? await TfServingStandIn.start({
        [model]: {
          versions: { '1': buildColourClassifier({ size, layout: 'NHWC' }) },
          input: tfInput,
        },
      })
    : await OipV2StandIn.start({
        [model]: { '1': buildColourClassifier({ size, layout: 'NCHW' }) },
      });
standIn.server.modelCompute(computeMs, 1, perInputMs);
console.log(`stand-in listening on ${standIn.server.port}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void standIn.close().finally(() => process.exit(0));
  });
}
