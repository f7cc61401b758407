import type { Outcome } from './load-generator.js';

/**
 * The client of the HTTP contenders, the same for all: Node's global fetch with a FormData body
 * (any fields, then the file part `file`), as the issue that asked for these numbers measured.
 */
export class MultipartClient {
  constructor(
    private readonly baseUrl: string,
    private readonly headers: Record<string, string> = {},
  ) {}

  /**
   * Posts the image and reads the whole answer. `accept` decides from the status and the parsed
   * body whether the request counts as ok.
   */
  async post(
    path: string,
    image: Buffer,
    accept: (status: number, body: unknown) => boolean,
    fields: Record<string, string> = {},
  ): Promise<Outcome> {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append('file', new Blob([image], { type: 'image/jpeg' }), 'image.jpg');
    const response = await fetch(`${this.baseUrl}${path}`, {
      method: 'POST',
      body: form,
      headers: this.headers,
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!accept(response.status, body)) return { ok: false, reason: `HTTP ${response.status}` };
    const serverTiming = response.headers.get('server-timing');
    return serverTiming ? { ok: true, serverTiming } : { ok: true };
  }
}
