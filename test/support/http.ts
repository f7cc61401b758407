/** Small helpers for talking to the API over real HTTP with the platform's fetch. */

export function imageForm(
  image: Buffer,
  fields: Record<string, string> = {},
  filename = 'image.png',
) {
  const form = new FormData();
  form.set('file', new Blob([new Uint8Array(image)]), filename);
  for (const [name, value] of Object.entries(fields)) form.set(name, value);
  return form;
}

export interface JobBody {
  id: string;
  status: string;
  backend: string;
  result: { task: string; predictions?: { label: string; index: number; score: number }[] } | null;
  error: { code: string; message: string } | null;
  timings?: Record<string, number | null>;
  [key: string]: unknown;
}

/**
 * How many backend calls carried these answers' jobs: a job that ran in a batch of n counts 1/n
 * (the dynamic batcher runs the jobs that are ready together as one call).
 */
export function callsFor(answers: readonly { body: JobBody }[]): number {
  const calls = answers.reduce((sum, { body }) => sum + 1 / Number(body.timings?.batch_size), 0);
  return Math.round(calls);
}

export async function predict(
  baseUrl: string,
  model: string,
  image: Buffer,
  init: { headers?: Record<string, string>; fields?: Record<string, string> } = {},
): Promise<{ status: number; body: JobBody & Record<string, unknown>; headers: Headers }> {
  const response = await fetch(`${baseUrl}/predict/${model}`, {
    method: 'POST',
    body: imageForm(image, init.fields),
    ...(init.headers ? { headers: init.headers } : {}),
  });
  return {
    status: response.status,
    body: (await response.json()) as JobBody,
    headers: response.headers,
  };
}

/** Polls GET /jobs/{id} until the job is finished. */
export async function pollJob(baseUrl: string, id: string, timeoutMs = 60_000): Promise<JobBody> {
  const until = Date.now() + timeoutMs;
  for (let delay = 50; Date.now() < until; delay = Math.min(delay * 2, 1000)) {
    const response = await fetch(`${baseUrl}/jobs/${id}`);
    const body = (await response.json()) as JobBody;
    if (['succeeded', 'failed', 'canceled'].includes(body.status)) return body;
    await new Promise((r) => setTimeout(r, delay));
  }
  throw new Error(`job ${id} not finished within ${timeoutMs} ms`);
}
