import { ProgressBar } from './progress-bar.js';

/** The process's output streams (stderr's `isTTY` decides whether a progress bar is drawn). */
export interface Streams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

/**
 * Where the CLI writes. Results go to stdout, as text or, with `--json`, one JSON document per
 * line; errors, the progress bar and summaries go to stderr, so stdout stays a clean stream of
 * results for a pipe.
 */
export class Terminal {
  private bar: ProgressBar | undefined;

  constructor(
    private readonly streams: Streams,
    readonly json: boolean,
  ) {}

  /** One result: `value` as a line of JSON with `--json`, else `text`. */
  result(value: unknown, text: string): void {
    this.write(this.streams.stdout, this.json ? JSON.stringify(value) : text);
  }

  /**
   * One item that failed: `document` as a line of JSON on stdout with `--json` (so every item has
   * its line), and `text` on stderr in any case.
   */
  failure(document: unknown, text: string): void {
    if (this.json) this.write(this.streams.stdout, JSON.stringify(document));
    this.note(text);
  }

  /** A line for the person at the terminal (errors, summaries). */
  note(text: string): void {
    this.write(this.streams.stderr, text);
  }

  /**
   * A progress bar over `total` items, when there is a person watching stderr and the output is
   * not for a program (`--json`); otherwise undefined, and nothing is drawn.
   */
  progress(total: number): ProgressBar | undefined {
    if (this.json || !this.streams.stderr.isTTY || total < 2) return undefined;
    this.bar = new ProgressBar(this.streams.stderr, total);
    return this.bar;
  }

  /** The bar's line is taken away while a line is written above it, then drawn again. */
  private write(stream: NodeJS.WritableStream, line: string): void {
    this.bar?.clear();
    stream.write(`${line}\n`);
    this.bar?.draw();
  }
}
