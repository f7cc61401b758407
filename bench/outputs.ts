import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import sharp from 'sharp';

/** Where `--publish` puts the chart and the JSON for the README. */
const PUBLISHED = 'docs/benchmarks';

/** Numbers in the JSON to 3 decimals: the machine's noise is far above that. */
function rounded(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isInteger(value)
    ? Math.round(value * 1000) / 1000
    : value;
}

/**
 * Writes `predict.json`, `predict.svg` and `predict.png` (rendered from the SVG by sharp) to
 * `out`; with `publish`, copies the three to docs/benchmarks/. Returns the paths written.
 */
export async function writeOutputs(options: {
  out: string;
  report: unknown;
  svg: string;
  publish: boolean;
}): Promise<string[]> {
  const { out, svg } = options;
  mkdirSync(out, { recursive: true });
  const files = {
    json: join(out, 'predict.json'),
    svg: join(out, 'predict.svg'),
    png: join(out, 'predict.png'),
  };
  writeFileSync(files.json, `${JSON.stringify(options.report, rounded, 2)}\n`);
  writeFileSync(files.svg, svg);
  await sharp(Buffer.from(svg)).png().toFile(files.png);
  const written = Object.values(files);
  if (!options.publish) return written;
  mkdirSync(PUBLISHED, { recursive: true });
  const published = written.map((file) => join(PUBLISHED, basename(file)));
  for (const [i, file] of written.entries()) copyFileSync(file, published[i]!);
  return [...written, ...published];
}

/**
 * Writes `<name>.json` to `out` (numbers to 3 decimals); with `publish`, copies it to
 * docs/benchmarks/. Returns the paths written.
 */
export function writeJsonReport(options: {
  out: string;
  name: string;
  report: unknown;
  publish: boolean;
}): string[] {
  mkdirSync(options.out, { recursive: true });
  const file = join(options.out, `${options.name}.json`);
  writeFileSync(file, `${JSON.stringify(options.report, rounded, 2)}\n`);
  if (!options.publish) return [file];
  mkdirSync(PUBLISHED, { recursive: true });
  const published = join(PUBLISHED, basename(file));
  copyFileSync(file, published);
  return [file, published];
}
