/** HTTP at the byte level, for requests fetch refuses to send (malformed, smuggling, slow). */
import net from 'node:net';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Whether the server closed the connection after answering. */
  closed: boolean;
}

export interface RawRequestOptions {
  /** Pause between chunks (a slow client). @defaultValue 0 */
  pauseMs?: number;
  /** Give up waiting for an answer after this long. @defaultValue 10000 */
  timeoutMs?: number;
}

/**
 * Writes `chunks` to a fresh connection and reads the first answer (headers and a
 * Content-Length body). Rejects when no answer comes within `timeoutMs`.
 */
export function rawRequest(
  port: number,
  chunks: (string | Buffer)[],
  options: RawRequestOptions = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let closed = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    const finish = () => {
      const text = received.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      const body = received.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
      if (body.length < length && !closed) return false;
      clearTimeout(timer);
      socket.destroy();
      resolve({
        status: Number(statusLine.split(' ')[1]),
        headers,
        body: body.subarray(0, length).toString('utf8'),
        closed: closed || headers.connection === 'close',
      });
      return true;
    };
    socket.on('data', (data) => {
      received = Buffer.concat([received, data]);
      finish();
    });
    socket.on('end', () => {
      closed = true;
      if (!finish()) {
        clearTimeout(timer);
        reject(new Error(`connection closed without an answer: ${received.toString('latin1')}`));
      }
    });
    socket.on('error', (err) => {
      // A reset after the answer was read is the server closing a bad connection.
      if (!finish()) {
        clearTimeout(timer);
        reject(err);
      }
    });
    socket.once('connect', async () => {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        socket.write(chunk);
        if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
      }
    });
  });
}

export type Part =
  | { name: string; value: string }
  | { name: string; data: Buffer; filename?: string; contentType?: string };

/** A multipart/form-data body built by hand, so a test can make it exactly as wrong as it likes. */
export function multipartBody(
  parts: Part[],
  boundary = `----ai-gateway-${Math.random().toString(16).slice(2)}`,
): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\n`));
    if ('data' in part) {
      chunks.push(
        Buffer.from(
          `Content-Disposition: form-data; name="${part.name}"; filename="${part.filename ?? 'image.png'}"\r\n` +
            `Content-Type: ${part.contentType ?? 'image/png'}\r\n\r\n`,
        ),
        part.data,
      );
    } else {
      chunks.push(
        Buffer.from(`Content-Disposition: form-data; name="${part.name}"\r\n\r\n${part.value}`),
      );
    }
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    body: Buffer.concat(chunks),
    contentType: `multipart/form-data; boundary=${boundary}`,
  };
}
