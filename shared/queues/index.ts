export {
  INFERENCE_QUEUES,
  JOB_QUEUES,
  JobName,
  QueueName,
  type WebhookJobData,
} from './queues.js';
