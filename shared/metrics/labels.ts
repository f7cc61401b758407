import { type ErrorCode, isErrorCode } from '../errors/index.js';
import { BACKEND_KINDS, type BackendKind } from '../models/model-spec.js';

/**
 * Label values are bounded: a series exists per registered model, backend, error code or HTTP
 * status, never per value a client made up. Anything outside the known set is `unknown`.
 */
export const UNKNOWN = 'unknown';

/** A backend, or `none` for a request answered before a backend was chosen (404, 429, ...). */
export type BackendLabel = BackendKind | 'none';

/** Maps a model name to itself when it is registered, else to `unknown`. */
export type ModelLabeler = (name: string | undefined) => string;

export function modelLabeler(registered: Iterable<string>): ModelLabeler {
  const known = new Set(registered);
  return (name) => (name !== undefined && known.has(name) ? name : UNKNOWN);
}

export function backendLabel(backend: string | undefined): BackendLabel {
  return BACKEND_KINDS.includes(backend as BackendKind) ? (backend as BackendKind) : 'none';
}

/** An error code from the catalogue, or `UNKNOWN` for a failure that did not come from it. */
export function codeLabel(code: string | undefined): ErrorCode | 'UNKNOWN' {
  return isErrorCode(code) ? code : 'UNKNOWN';
}

/** An HTTP status as a label: the 100-599 range, anything else `unknown`. */
export function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : UNKNOWN;
}
