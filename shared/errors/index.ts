export { CATALOGUE, type ErrorCode, type ErrorSpec, isErrorCode } from './catalogue.js';
export { causeOf, errors, withCause } from './errors.js';
export {
  failureCode,
  type JobError,
  jobError,
  jobFailure,
  parseJobFailure,
} from './job-failure.js';
