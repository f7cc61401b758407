import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

/** Every TypeScript file under `dir`, relative to the project root. */
function sources(dir: string): string[] {
  return readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => path.join(dir, file));
}

/** The top-level folder each relative import of `file` lands in. */
function importedLayers(file: string): { spec: string; layer: string }[] {
  const text = readFileSync(path.join(root, file), 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map(
    (m) => m[1]!,
  );
  return specs.map((spec) => ({
    spec,
    layer: path.relative(root, path.resolve(root, path.dirname(file), spec)).split(path.sep)[0]!,
  }));
}

/** The project's folders of code; a file at the root (package.json) is no layer. */
const FOLDERS = ['api', 'workers', 'shared', 'client', 'bench', 'scripts', 'test'];

/** Which layers each layer may import besides itself: the two sides meet only in shared/. */
const ALLOWED: Record<string, string[]> = {
  api: ['shared'],
  workers: ['shared'],
  shared: [],
};

describe('layers', () => {
  it.each(Object.keys(ALLOWED))('%s/ imports no other layer but the ones allowed', (layer) => {
    const crossings = sources(layer).flatMap((file) =>
      importedLayers(file)
        .filter(
          ({ layer: to }) => FOLDERS.includes(to) && to !== layer && !ALLOWED[layer]!.includes(to),
        )
        .map(({ spec }) => `${file} -> ${spec}`),
    );
    expect(crossings).toEqual([]);
  });

  it('sees the imports it checks', () => {
    // A guard against a pattern that matches nothing: the API does import shared/.
    expect(sources('api').some((f) => importedLayers(f).some((i) => i.layer === 'shared'))).toBe(
      true,
    );
  });

  it('opens every BullMQ queue, worker and event stream in one place', () => {
    // The one file that builds them gives each role its settings; anywhere else a `new Queue(...)`
    // could pick locks or retention of its own.
    const opener = path.join('shared', 'queues', 'bullmq-objects.ts');
    const builders = ['api', 'workers', 'shared'].flatMap(sources).filter((file) => {
      const text = readFileSync(path.join(root, file), 'utf8');
      const fromBullmq = /import\s*\{([^}]*)\}\s*from\s*'bullmq'/.exec(text)?.[1] ?? '';
      return ['Queue', 'Worker', 'QueueEvents', 'FlowProducer'].some(
        (name) =>
          new RegExp(`(^|[\\s,])${name}([\\s,]|$)`).test(fromBullmq) &&
          new RegExp(`new ${name}\\b`).test(text),
      );
    });
    expect(builders).toEqual([opener]);
  });
});
