import { type TUnsafe, Type } from '@sinclair/typebox';

/**
 * One of a fixed set of strings, as a JSON Schema `enum`: a bad value gets one error that lists
 * the allowed values, where a union of literals would get one error per literal.
 */
export function OneOf<const T extends string>(
  values: readonly T[],
  options: { default?: T; description?: string } = {},
): TUnsafe<T> {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], ...options });
}
