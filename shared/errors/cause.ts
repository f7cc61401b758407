/**
 * Keeps what caused an error for the logs (the error handler logs 5xx answers with their cause),
 * while the answer's detail stays the catalogue's words.
 */
export function withCause<E extends Error>(error: E, cause: unknown): E {
  return Object.assign(error, { cause });
}

/**
 * What caused an error, in the operator's words (a server's address and answer, a file's path):
 * the message of the cause {@link withCause} kept, or undefined when it kept none.
 */
export function causeOf(error: unknown): string | undefined {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if (cause === undefined) return undefined;
  return cause instanceof Error ? cause.message : String(cause);
}
