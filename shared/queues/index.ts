export {
  INFERENCE_QUEUES,
  type InferenceJobData,
  type InferenceParams,
  inferenceJobOptions,
  JOB_QUEUES,
  JobName,
  QueueName,
  type WebhookJobData,
} from './queues.js';
