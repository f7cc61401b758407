export { CATALOGUE, type ErrorCode, type ErrorSpec, isErrorCode } from './catalogue.js';
export { errors } from './errors.js';
export { type JobError, jobFailure, parseJobFailure } from './job-failure.js';
