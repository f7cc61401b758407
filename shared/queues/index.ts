export {
  INFERENCE_QUEUES,
  type InferenceJobData,
  type InferenceParams,
  inferenceJobOptions,
  JobName,
  QueueName,
} from './queues.js';
