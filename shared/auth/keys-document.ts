import { extname } from 'node:path';
import { type ParseError, parse as parseJson, printParseErrorCode } from 'jsonc-parser';
import { parse as parseYaml, YAMLParseError } from 'yaml';

/** Where a keys file stops parsing, and why, without any of its text. */
export class KeysSyntaxError extends Error {
  override name = 'KeysSyntaxError';
}

/**
 * The document of a keys file, JSON (`.json`) or YAML (anything else). A file that does not parse
 * throws a {@link KeysSyntaxError} naming the parser's error code, line and column only: the
 * parsers' own messages quote the source around the error, and next to an error there is often a
 * key.
 */
export function parseKeysDocument(path: string, text: string): unknown {
  return extname(path) === '.json' ? readJson(text) : readYaml(text);
}

function readJson(text: string): unknown {
  const errors: ParseError[] = [];
  const document: unknown = parseJson(text, errors, {
    disallowComments: true,
    allowTrailingComma: false,
    allowEmptyContent: false,
  });
  const [first] = errors;
  if (first) {
    const { line, column } = lineAndColumn(text, first.offset);
    throw new KeysSyntaxError(
      `not valid JSON: ${printParseErrorCode(first.error)} at line ${line}, column ${column}`,
    );
  }
  return document;
}

function readYaml(text: string): unknown {
  try {
    // The failsafe schema reads every scalar as text: a digest or key made of digits stays a
    // string instead of turning into a number.
    return parseYaml(text, { schema: 'failsafe' });
  } catch (err) {
    if (!(err instanceof YAMLParseError)) throw err;
    const at = err.linePos?.[0];
    const where = at ? ` at line ${at.line}, column ${at.col}` : '';
    throw new KeysSyntaxError(`not valid YAML: ${err.code}${where}`);
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf('\n') + 1;
  return { line: before.split('\n').length, column: offset - lineStart + 1 };
}
