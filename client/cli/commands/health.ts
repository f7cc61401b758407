import type { HealthReport } from '../../index.js';
import {
  COMMON_OPTIONS,
  type Command,
  connect,
  parseCommandLine,
  printUsage,
  terminalFor,
} from '../command.js';
import { EXIT, UsageError } from '../exit-codes.js';

export const health: Command = {
  name: 'health',
  summary: 'the health of the API, its dependencies and backends (exit 1 when unhealthy)',
  usage: `Usage: ai-gateway health [options]

Prints GET /health: healthy, degraded (something is down but models can be served) or unhealthy
(nothing can be served). Exits 1 when unhealthy, so it can serve as a check in a script.`,

  async run(context) {
    const { values, positionals } = parseCommandLine(context.args, COMMON_OPTIONS);
    if (values.help) return printUsage(context, health);
    if (positionals.length > 0) throw new UsageError('health takes no arguments');
    const report = await connect(values, context.env).health(context.signal);
    terminalFor(context, values).result(report, describeHealth(report));
    return report.status === 'unhealthy' ? EXIT.failed : EXIT.ok;
  },
};

function describeHealth(report: HealthReport): string {
  const { services } = report;
  const lines = [
    report.status,
    `  redis ${services.redis}, storage ${services.storage}, rate limiter ${services.rate_limiter}`,
  ];
  for (const [backend, picture] of Object.entries(report.backends)) {
    const workers = `${picture.workers} worker${picture.workers === 1 ? '' : 's'}`;
    const reason = picture.reason ? `: ${picture.reason}` : '';
    lines.push(`  ${backend} ${picture.up ? 'up' : 'down'}, ${workers}${reason}`);
  }
  return lines.join('\n');
}
