import { type Command, connect, parseCommandLine, printUsage } from '../command.js';
import { describeResult } from '../describe.js';
import { UsageError } from '../exit-codes.js';
import { inferenceOptions, UPLOAD_OPTIONS, UPLOAD_USAGE, uploadFiles } from '../uploads.js';

export const predict: Command = {
  name: 'predict',
  summary: 'run a model on images and print the answers',
  usage: `Usage: ai-gateway predict <model> <image...> [options]

Sends each image to POST /predict/{model}, waits for its answer and prints it:
  line.png  180 0.991, 0 0.009

${UPLOAD_USAGE}`,

  async run(context) {
    const { values, positionals } = parseCommandLine(context.args, UPLOAD_OPTIONS);
    if (values.help) return printUsage(context, predict);
    const [model, ...files] = positionals;
    if (!model || files.length === 0) {
      throw new UsageError('predict needs a model and at least one image');
    }
    const client = connect(values, context.env);
    const options = inferenceOptions(values);
    return uploadFiles(context, values, files, {
      send: (image, filename, signal) =>
        client.predict(model, image, { ...options, filename, signal }),
      line: (file, job) => `${file}  ${describeResult(job.result)}`,
    });
  },
};
