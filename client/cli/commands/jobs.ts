import type { Job } from '../../index.js';
import { runBatch } from '../batch.js';
import {
  COMMON_OPTIONS,
  type Command,
  type CommandContext,
  connect,
  integerOption,
  parseCommandLine,
  printUsage,
  splitCommand,
  terminalFor,
} from '../command.js';
import { describeError, describeJob, errorDocument } from '../describe.js';
import { type ExitCode, UsageError } from '../exit-codes.js';

const PER_JOB_OPTIONS = { ...COMMON_OPTIONS, concurrency: { type: 'string', short: 'c' } } as const;
const PER_JOB_USAGE = '  -c, --concurrency <n>  jobs asked about at once, 1 to 64 (default 8)';

const get: Command = {
  name: 'get',
  summary: 'print jobs as they are now',
  usage: `Usage: ai-gateway jobs get <id...> [options]

Prints each job (GET /jobs/{id}): id, status, model, result or error, time taken.

${PER_JOB_USAGE}`,
  async run(context) {
    const { values, positionals } = parseCommandLine(context.args, PER_JOB_OPTIONS);
    if (values.help) return printUsage(context, get);
    const client = connect(values, context.env);
    return perJob(context, values, jobIds(positionals, get), (id, signal) =>
      client.get(id, signal),
    );
  },
};

const wait: Command = {
  name: 'wait',
  summary: 'wait until jobs finish and print them (exit 1 unless all succeeded)',
  usage: `Usage: ai-gateway jobs wait <id...> [options]

Polls each job until it has succeeded, failed or been canceled, and prints it. Exits 1 unless
every job succeeded.

${PER_JOB_USAGE}
  --timeout <s>          how long to wait for each job, in seconds (default 300)`,
  async run(context) {
    const options = { ...PER_JOB_OPTIONS, timeout: { type: 'string' } } as const;
    const { values, positionals } = parseCommandLine(context.args, options);
    if (values.help) return printUsage(context, wait);
    const timeout = integerOption(values.timeout, 'timeout', { min: 1, max: 86_400, default: 300 });
    const client = connect(values, context.env);
    return perJob(
      context,
      values,
      jobIds(positionals, wait),
      (id, signal) => client.wait(id, { timeoutMs: timeout! * 1000, signal }),
      (job) => job.status === 'succeeded',
    );
  },
};

const cancel: Command = {
  name: 'cancel',
  summary: 'cancel jobs that have not finished',
  usage: `Usage: ai-gateway jobs cancel <id...> [options]

Cancels each job (DELETE /jobs/{id}): a queued job never runs, a running one stops. A job that
has already finished cannot be canceled (JOB_FINISHED, exit 1).

${PER_JOB_USAGE}`,
  async run(context) {
    const { values, positionals } = parseCommandLine(context.args, PER_JOB_OPTIONS);
    if (values.help) return printUsage(context, cancel);
    const client = connect(values, context.env);
    return perJob(context, values, jobIds(positionals, cancel), (id, signal) =>
      client.cancel(id, signal),
    );
  },
};

const list: Command = {
  name: 'list',
  summary: "list this key's jobs, newest first",
  usage: `Usage: ai-gateway jobs list [options]

Lists the jobs of this API key that are still kept, newest first.

  --limit <n>            jobs per page, 1 to 100 (default 20)
  --all                  every page, not only the first`,
  async run(context) {
    const options = {
      ...COMMON_OPTIONS,
      limit: { type: 'string' },
      all: { type: 'boolean' },
    } as const;
    const { values, positionals } = parseCommandLine(context.args, options);
    if (values.help) return printUsage(context, list);
    if (positionals.length > 0) throw new UsageError('jobs list takes no arguments');
    const limit = integerOption(values.limit, 'limit', { min: 1, max: 100, default: 20 })!;
    const client = connect(values, context.env);
    const terminal = terminalFor(context, values);
    if (values.all) {
      for await (const job of client.jobs({ limit, signal: context.signal })) {
        terminal.result(job, describeJob(job));
      }
      return 0;
    }
    const page = await client.list({ limit, signal: context.signal });
    for (const job of page.jobs) terminal.result(job, describeJob(job));
    if (page.next && !terminal.json) terminal.note('(more jobs: --all lists every page)');
    return 0;
  },
};

const SUBCOMMANDS = [get, wait, cancel, list];

export const jobs: Command = {
  name: 'jobs',
  summary: 'get, wait for, cancel or list async jobs',
  usage: `Usage: ai-gateway jobs <get|wait|cancel|list> [options]

${SUBCOMMANDS.map((c) => `  ${c.name.padEnd(8)} ${c.summary}`).join('\n')}

ai-gateway jobs <command> --help says more.`,
  async run(context) {
    const { name, rest } = splitCommand(context.args);
    const subcommand = SUBCOMMANDS.find((c) => c.name === name);
    if (subcommand) return subcommand.run({ ...context, args: rest });
    if (name === undefined && rest.some((arg) => arg === '--help' || arg === '-h')) {
      return printUsage(context, jobs);
    }
    throw new UsageError(
      name === undefined ? 'jobs needs a command' : `jobs has no command "${name}"`,
    );
  },
};

function jobIds(positionals: string[], command: Command): string[] {
  if (positionals.length === 0) throw new UsageError(`jobs ${command.name} needs a job id`);
  return positionals;
}

/**
 * One request per id, `--concurrency` at a time; a line per job (with --json: the job, or
 * `{"id", "error"}`), a summary for several.
 */
function perJob(
  context: CommandContext,
  values: { concurrency?: string | undefined; json?: boolean | undefined },
  ids: string[],
  call: (id: string, signal: AbortSignal) => Promise<Job>,
  succeeded: (job: Job) => boolean = () => true,
): Promise<ExitCode> {
  const terminal = terminalFor(context, values);
  return runBatch(terminal, ids, {
    noun: 'jobs',
    concurrency: integerOption(values.concurrency, 'concurrency', { min: 1, max: 64, default: 8 })!,
    signal: context.signal,
    run: call,
    report(_id, job) {
      terminal.result(job, describeJob(job));
      return succeeded(job);
    },
    failed(id, error) {
      terminal.failure({ id, error: errorDocument(error) }, `${id}: ${describeError(error)}`);
    },
  });
}
