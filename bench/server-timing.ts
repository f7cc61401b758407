/**
 * Durations from `Server-Timing` header values (W3C Server Timing: `name;dur=1.2;desc="..."`,
 * comma-separated, parameters token or quoted-string). An entry without `dur` counts as 0 ms; an
 * entry named twice in one header is summed.
 */
export function parseServerTiming(header: string): Record<string, number> {
  const durations: Record<string, number> = {};
  for (const entry of splitOutsideQuotes(header, ',')) {
    const [name, ...params] = splitOutsideQuotes(entry, ';').map((part) => part.trim());
    if (!name || !/^[!#$%&'*+.^_`|~\w-]+$/.test(name)) continue;
    let dur = 0;
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'dur') continue;
      const value = Number(unquote(param.slice(eq + 1).trim()));
      if (Number.isFinite(value)) dur = value;
      break;
    }
    durations[name] = (durations[name] ?? 0) + dur;
  }
  return durations;
}

/** The mean duration of each entry over the headers (a header without an entry counts 0 for it). */
export function meanServerTiming(headers: readonly string[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const header of headers) {
    for (const [name, ms] of Object.entries(parseServerTiming(header))) {
      sums[name] = (sums[name] ?? 0) + ms;
    }
  }
  return Object.fromEntries(Object.entries(sums).map(([name, ms]) => [name, ms / headers.length]));
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted && ch === '\\') {
      current += ch + (text[++i] ?? '');
    } else if (ch === '"') {
      quoted = !quoted;
      current += ch;
    } else if (ch === separator && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

function unquote(value: string): string {
  return value.startsWith('"') && value.endsWith('"')
    ? value.slice(1, -1).replace(/\\(.)/g, '$1')
    : value;
}
