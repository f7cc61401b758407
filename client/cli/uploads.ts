import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { ApiError, type InferenceOptions, type Job } from '../index.js';
import { failsEveryRequest, runBatch } from './batch.js';
import {
  COMMON_OPTIONS,
  type CommandContext,
  integerOption,
  numberOption,
  terminalFor,
} from './command.js';
import { describeError, errorDocument } from './describe.js';
import type { ExitCode } from './exit-codes.js';

/** The options of every command that sends images. */
export const UPLOAD_OPTIONS = {
  ...COMMON_OPTIONS,
  'model-version': { type: 'string' },
  'top-k': { type: 'string' },
  threshold: { type: 'string' },
  concurrency: { type: 'string', short: 'c' },
} as const;

export const UPLOAD_USAGE = `  --model-version <v>    a version of the model (default: the newest)
  --top-k <n>            labels per answer
  --threshold <x>        the lowest score kept (0 to 1)
  -c, --concurrency <n>  images in flight at once, 1 to 64 (default 4)`;

interface UploadValues {
  'model-version'?: string | undefined;
  'top-k'?: string | undefined;
  threshold?: string | undefined;
  concurrency?: string | undefined;
  json?: boolean | undefined;
}

export interface Upload {
  /** Sends one image. */
  send(image: Uint8Array, filename: string, signal: AbortSignal): Promise<Job>;
  /** The line a sent file prints. */
  line(file: string, job: Job): string;
}

/** The client's options for `--model-version`, `--top-k` and `--threshold`. */
export function inferenceOptions(values: UploadValues): InferenceOptions {
  const topK = integerOption(values['top-k'], 'top-k', { min: 1, max: 1000 });
  const threshold = numberOption(values.threshold, 'threshold', { min: 0, max: 1 });
  return {
    version: values['model-version'],
    topK,
    threshold,
  };
}

/**
 * Reads and sends every file, `--concurrency` at a time. Each prints a line as it finishes (with
 * `--json`: `{"file", "job"}` or `{"file", "error"}`); a failure of the request itself (no
 * connection, a refused key, an unknown model, a bad parameter) stops the rest.
 */
export function uploadFiles(
  context: CommandContext,
  values: UploadValues,
  files: string[],
  upload: Upload,
): Promise<ExitCode> {
  const terminal = terminalFor(context, values);
  return runBatch(terminal, files, {
    noun: 'images',
    concurrency: integerOption(values.concurrency, 'concurrency', { min: 1, max: 64, default: 4 })!,
    signal: context.signal,
    run: async (file, signal) =>
      upload.send(await readFile(file, { signal }), basename(file), signal),
    report(file, job) {
      terminal.result({ file, job }, upload.line(file, job));
      return true;
    },
    failed(file, error) {
      terminal.failure({ file, error: errorDocument(error) }, `${file}: ${describeError(error)}`);
    },
    stopsBatch: failsEveryUpload,
  });
}

/**
 * Besides what fails every request: a 400 (a bad parameter: the files' own faults are 413, 415
 * and 422) and a 404 (no such model, version or backend) would repeat for every file.
 */
function failsEveryUpload(error: unknown): boolean {
  return (
    failsEveryRequest(error) ||
    (error instanceof ApiError && (error.status === 400 || error.status === 404))
  );
}
