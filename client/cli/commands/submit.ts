import { isWebhookEvent, type SubmitOptions } from '../../index.js';
import { type Command, connect, integerOption, parseCommandLine, printUsage } from '../command.js';
import { UsageError } from '../exit-codes.js';
import { inferenceOptions, UPLOAD_OPTIONS, UPLOAD_USAGE, uploadFiles } from '../uploads.js';

const OPTIONS = {
  ...UPLOAD_OPTIONS,
  webhook: { type: 'string' },
  'webhook-events': { type: 'string' },
  priority: { type: 'string' },
  deadline: { type: 'string' },
} as const;

export const submit: Command = {
  name: 'submit',
  summary: 'queue async jobs for images and print their ids',
  usage: `Usage: ai-gateway submit <model> <image...> [options]

Submits each image as an async job (POST /jobs) and prints its id as soon as it is queued:
  line.png  3f0c2a9e-…  queued
Then: ai-gateway jobs wait <id...>

${UPLOAD_USAGE}
  --priority <n>         1 (first) to 10 (last) (default 5)
  --deadline <t>         seconds from now, or an RFC 3339 time: not started by then, not run
  --webhook <url>        where to POST the finished job (signed)
  --webhook-events <e>   started,completed (default completed)`,

  async run(context) {
    const { values, positionals } = parseCommandLine(context.args, OPTIONS);
    if (values.help) return printUsage(context, submit);
    const [model, ...files] = positionals;
    if (!model || files.length === 0) {
      throw new UsageError('submit needs a model and at least one image');
    }
    const client = connect(values, context.env);
    const options = { ...inferenceOptions(values), ...jobOptions(values) };
    return uploadFiles(context, values, files, {
      send: (image, filename, signal) =>
        client.submit(model, image, { ...options, filename, signal }),
      line: (file, job) => `${file}  ${job.id}  ${job.status}`,
    });
  },
};

function jobOptions(values: {
  webhook?: string | undefined;
  'webhook-events'?: string | undefined;
  priority?: string | undefined;
  deadline?: string | undefined;
}): SubmitOptions {
  const priority = integerOption(values.priority, 'priority', { min: 1, max: 10 });
  const deadline = values.deadline === undefined ? undefined : parseDeadline(values.deadline);
  const events = values['webhook-events']?.split(',').map((event) => event.trim());
  if (events && !events.every(isWebhookEvent)) {
    throw new UsageError('--webhook-events takes started, completed or both, comma-separated');
  }
  return {
    priority,
    deadline,
    webhook: values.webhook,
    webhookEvents: events,
  };
}

/** Seconds from now, or a time; the API checks the range. */
function parseDeadline(text: string): number | Date {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at)) {
    throw new UsageError('--deadline must be seconds from now or an RFC 3339 time');
  }
  return new Date(at);
}
