import type { InputSpec } from '../../../shared/models/model-spec.js';

/** The registry's input as a tensor shape with the batch dimension first (-1: any batch size). */
export function registryShape(input: InputSpec): number[] {
  return input.layout === 'NCHW'
    ? [-1, 3, input.height, input.width]
    : [-1, input.height, input.width, 3];
}

/**
 * Why a server's input shape cannot take the registry's tensor, or undefined when it can. A
 * negative (or absent) dimension on the server's side accepts any size; an unknown rank accepts
 * anything.
 */
export function shapeMismatch(
  actual: readonly number[] | undefined,
  input: InputSpec,
): string | undefined {
  if (actual === undefined) return undefined;
  const expected = registryShape(input);
  const fits =
    actual.length === expected.length &&
    actual.every((dim, i) => i === 0 || dim < 0 || dim === expected[i]);
  return fits
    ? undefined
    : `shape [${actual.join(', ')}], the registry says [N, ${expected.slice(1).join(', ')}] (${input.layout})`;
}

/** Picks a tensor by its configured name, or the only one there is. */
export function pickName(
  what: 'input' | 'output',
  names: readonly string[],
  configured: string | undefined,
): { ok: true; name: string } | { ok: false; reason: string } {
  const listed = names.length > 0 ? names.join(', ') : 'none';
  if (configured) {
    return names.includes(configured)
      ? { ok: true, name: configured }
      : { ok: false, reason: `no ${what} named "${configured}" (${what}s: ${listed})` };
  }
  if (names.length === 1) return { ok: true, name: names[0]! };
  return {
    ok: false,
    reason: `${names.length} ${what}s (${listed}): set ${what}_name in the registry`,
  };
}
