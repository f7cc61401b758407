import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EnvSchema } from '../../shared/config/env-schema.js';
import { CATALOGUE } from '../../shared/errors/catalogue.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The first column (a `code` span) of each row of the table between two markers. */
function tableRows(section: string): Map<string, string[]> {
  const start = README.indexOf(`<!-- ${section}:start -->`);
  const end = README.indexOf(`<!-- ${section}:end -->`);
  expect(start, `README has no ${section} table`).toBeGreaterThan(-1);
  const rows = new Map<string, string[]>();
  for (const line of README.slice(start, end).split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const key = /^`([A-Z0-9_]+)`$/.exec(cells[1] ?? '')?.[1];
    if (key) rows.set(key, cells.slice(2, -1));
  }
  return rows;
}

describe('README stays in step with the code', () => {
  it('documents every error code with its status, and no code that does not exist', () => {
    const rows = tableRows('errors');
    expect([...rows.keys()].sort()).toEqual(Object.keys(CATALOGUE).sort());
    for (const [code, spec] of Object.entries(CATALOGUE)) {
      expect(rows.get(code)?.[0], code).toBe(String(spec.status));
    }
  });

  it('documents every environment variable with its default, and no variable that is not read', () => {
    const rows = tableRows('config');
    const properties = EnvSchema.properties as Record<string, { default?: unknown }>;
    expect([...rows.keys()].sort()).toEqual(Object.keys(properties).sort());
    for (const [name, schema] of Object.entries(properties)) {
      const documented = rows.get(name)?.[0];
      expect(documented, name).toBe(
        schema.default === undefined ? '(unset)' : `\`${String(schema.default)}\``,
      );
    }
  });
});
