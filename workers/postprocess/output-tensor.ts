/** One output of a model, as a backend hands it back: a flat row-major buffer and its shape. */
export interface OutputTensor {
  data: Float32Array;
  dims: readonly number[];
}

/**
 * How preprocessing placed the original image inside the model input, so postprocessing can map
 * model-input coordinates back. A point (x, y) in original pixels lands at
 * (x * scaleX + padLeft, y * scaleY + padTop) in model-input pixels.
 */
export interface ImageTransform {
  originalWidth: number;
  originalHeight: number;
  scaleX: number;
  scaleY: number;
  padLeft: number;
  padTop: number;
}
