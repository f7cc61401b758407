export { type Activation, type ClassifyOptions, classify } from './classification.js';
export type { ImageTransform, OutputTensor } from './output-tensor.js';
export { type DecodeYolov8Options, decodeYolov8 } from './yolov8.js';
