export {
  INFERENCE_QUEUES,
  type InferenceJobData,
  type InferenceParams,
  JOB_QUEUES,
  JobName,
  QueueName,
  type WebhookJobData,
} from './queues.js';
