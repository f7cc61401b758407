/**
 * `T` with its keys that may hold `undefined` made optional and `undefined` taken out of their
 * types: what {@link withoutUndefined} returns.
 */
export type WithoutUndefined<T extends object> = {
  [K in keyof T as undefined extends T[K] ? never : K]: T[K];
} & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

/**
 * A copy of `object` without its keys whose value is `undefined`. For the few places where a key
 * that is there but undefined is not the same as no key: the fields of a Redis hash (ioredis
 * writes an undefined value as an empty field), options a library merges over its own with
 * `Object.assign`. Everywhere else a property set to `undefined` is as good as an absent one.
 */
export function withoutUndefined<T extends object>(object: T): WithoutUndefined<T> {
  return Object.fromEntries(
    Object.entries(object).filter(([, value]) => value !== undefined),
  ) as WithoutUndefined<T>;
}
