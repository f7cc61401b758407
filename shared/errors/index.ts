export {
  CATALOGUE,
  type ErrorCode,
  type ErrorSpec,
  isErrorCode,
  type TemplateArgs,
} from './catalogue.js';
export { causeOf, withCause } from './cause.js';
export {
  failureCode,
  type JobError,
  jobError,
  jobFailure,
  parseJobFailure,
} from './job-failure.js';
