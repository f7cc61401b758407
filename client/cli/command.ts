import { type ParseArgsConfig, parseArgs } from 'node:util';
import { AiGatewayClient } from '../index.js';
import { type ExitCode, UsageError } from './exit-codes.js';
import { type Streams, Terminal } from './terminal.js';

/** Where the API is when neither `--url` nor `AI_GATEWAY_URL` says: the API's default port. */
export const DEFAULT_URL = 'http://127.0.0.1:8000';

/** What a command runs with; the process's streams and environment are handed in, never read. */
export interface CommandContext {
  /** The arguments after the command's name. */
  args: string[];
  env: Record<string, string | undefined>;
  streams: Streams;
  /** Aborted on Ctrl-C. */
  signal: AbortSignal;
}

export interface Command {
  name: string;
  /** One line for the overview. */
  summary: string;
  /** The command's `--help`. */
  usage: string;
  run(context: CommandContext): Promise<ExitCode>;
}

/** The options every command takes. */
export const COMMON_OPTIONS = {
  url: { type: 'string' },
  key: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const COMMON_USAGE = `Options for every command:
  --url <url>   the API (default: $AI_GATEWAY_URL, else ${DEFAULT_URL})
  --key <key>   the API key, sent as Authorization: Bearer (default: $AI_GATEWAY_KEY)
  --json        results as JSON, one document per line, on stdout
  -h, --help    this help`;

/**
 * The first positional argument (a command's or subcommand's name) and the arguments around it,
 * so options may come before or after it (`ai-gateway --url X models` and `models --url X`).
 */
export function splitCommand(args: string[]): { name?: string; rest: string[] } {
  const { tokens } = parseArgs({
    args,
    options: COMMON_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const first = tokens.find((token) => token.kind === 'positional');
  if (!first) return { rest: args };
  return { name: first.value, rest: args.filter((_, index) => index !== first.index) };
}

/** util.parseArgs, strict, with its complaints as usage errors. */
export function parseCommandLine<const O extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: O,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (error) {
    // Node's message goes on to explain `--`; its first sentence says what is wrong.
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split('. ')[0]!);
  }
}

/** The client for `--url` / `--key`, or the environment's, or the defaults. */
export function connect(
  values: { url?: string | undefined; key?: string | undefined },
  env: CommandContext['env'],
): AiGatewayClient {
  const baseUrl = values.url ?? env.AI_GATEWAY_URL ?? DEFAULT_URL;
  if (!URL.canParse(baseUrl) || !/^https?:$/.test(new URL(baseUrl).protocol)) {
    throw new UsageError(`--url must be an http(s) URL, got "${baseUrl}"`);
  }
  const apiKey = values.key ?? env.AI_GATEWAY_KEY;
  return new AiGatewayClient({ baseUrl, apiKey });
}

/** The terminal for a parsed command line's `--json`. */
export function terminalFor(context: CommandContext, values: { json?: boolean | undefined }) {
  return new Terminal(context.streams, values.json ?? false);
}

/** Prints a command's help on stdout: asked for, so not an error. */
export function printUsage(context: CommandContext, command: Pick<Command, 'usage'>): ExitCode {
  context.streams.stdout.write(`${command.usage}\n\n${COMMON_USAGE}\n`);
  return 0;
}

/** An integer option within bounds, or its default when absent. */
export function integerOption(
  value: string | undefined,
  name: string,
  bounds: { min: number; max: number; default?: number },
): number | undefined {
  if (value === undefined) return bounds.default;
  const number = Number(value);
  if (!/^\s*-?\d+\s*$/.test(value) || number < bounds.min || number > bounds.max) {
    throw new UsageError(`--${name} must be an integer from ${bounds.min} to ${bounds.max}`);
  }
  return number;
}

/** A number option within bounds, or undefined when absent. */
export function numberOption(
  value: string | undefined,
  name: string,
  bounds: { min: number; max: number },
): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (value.trim() === '' || !(number >= bounds.min && number <= bounds.max)) {
    throw new UsageError(`--${name} must be a number from ${bounds.min} to ${bounds.max}`);
  }
  return number;
}
