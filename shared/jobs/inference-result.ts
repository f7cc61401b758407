import type { Task } from '../models/model-spec.js';

export interface Classification {
  label: string;
  index: number;
  score: number;
}

/** A box in the original image's pixels, top-left origin. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Detection extends Classification {
  box: Box;
}

export type Prediction =
  | { task: 'classification'; predictions: Classification[] }
  | { task: 'detection'; detections: Detection[] }
  | { task: 'embedding'; embedding: number[] }
  | { task: 'raw'; outputs: Record<string, { dims: number[]; data: number[] }> };

export interface StageTimings {
  /** Image fetch from storage. */
  fetch_ms: number;
  preprocess_ms: number;
  /** Waiting for the rest of its batch (dynamic batching); absent in results of older workers. */
  batch_wait_ms?: number;
  /** The backend call, shared by every job of the batch. */
  inference_ms: number;
  postprocess_ms: number;
  /** Inputs in the backend call the job ran in (1: on its own); absent from older workers. */
  batch_size?: number;
}

/** What a worker returns for a job (BullMQ `returnvalue`). */
export interface InferenceResult {
  /** The model version that actually served the job. */
  version: string;
  backend: string;
  result: Prediction;
  timings: StageTimings;
  /**
   * When this attempt started and when its result was ready (epoch ms), and which attempt it was:
   * a completion event carries them, so a waiting request answers without reading the job back.
   */
  startedAt: number;
  finishedAt: number;
  attempts: number;
}

export type { Task };
