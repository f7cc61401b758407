import type { ModelDescription } from '../../index.js';
import {
  COMMON_OPTIONS,
  type Command,
  connect,
  parseCommandLine,
  printUsage,
  terminalFor,
} from '../command.js';
import { UsageError } from '../exit-codes.js';

export const models: Command = {
  name: 'models',
  summary: 'list the models, or describe one',
  usage: `Usage: ai-gateway models [name] [options]

Lists the registered models (GET /models) and whether each can be served now; with a name, that
model alone (GET /models/{name}). --json prints the API's document as it is.`,

  async run(context) {
    const { values, positionals } = parseCommandLine(context.args, COMMON_OPTIONS);
    if (values.help) return printUsage(context, models);
    if (positionals.length > 1) throw new UsageError('models takes at most one model name');
    const client = connect(values, context.env);
    const terminal = terminalFor(context, values);
    const [name] = positionals;
    if (name) {
      const model = await client.model(name, context.signal);
      terminal.result(model, describeModel(model));
      return 0;
    }
    const list = await client.models(context.signal);
    // A model served by both backends is in both lists.
    const byName = new Map(
      [...list.tensorflow.models, ...Object.values(list.onnx.models)].map((m) => [m.name, m]),
    );
    terminal.result(list, [...byName.values()].map(describeModel).join('\n'));
    return 0;
  },
};

/** `text_orientation  ready  classification  onnx  versions 1`, and why when unavailable. */
function describeModel(model: ModelDescription): string {
  const versions = model.versions.length ? `versions ${model.versions.join(',')}` : 'no versions';
  const reason = model.reason ? `  (${model.reason})` : '';
  return `${model.name}  ${model.status}  ${model.task}  ${model.backends.join(',')}  ${versions}${reason}`;
}
