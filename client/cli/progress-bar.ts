/** Redraws at most this often: a terminal cannot show more, and each draw costs a write. */
const REDRAW_MS = 100;
const CLEAR_LINE = '\r\x1b[K';

/**
 * One line on a terminal: `[#######-------] 12/40  done 11  failed 1  3.2/s  eta 9s`. A few
 * lines of code, so no library: it only ever redraws its own line.
 */
export class ProgressBar {
  private done = 0;
  private failed = 0;
  private drawnAt = 0;
  private finished = false;
  private readonly startedAt = Date.now();

  constructor(
    private readonly stream: NodeJS.WritableStream & { columns?: number },
    private readonly total: number,
  ) {}

  /** Counts one finished item and redraws, unless it drew a moment ago. */
  tick(outcome: 'done' | 'failed'): void {
    if (outcome === 'done') this.done++;
    else this.failed++;
    if (Date.now() - this.drawnAt >= REDRAW_MS || this.done + this.failed === this.total) {
      this.draw();
    }
  }

  draw(): void {
    if (this.finished) return;
    this.drawnAt = Date.now();
    const finished = this.done + this.failed;
    const seconds = (Date.now() - this.startedAt) / 1000;
    const rate = seconds > 0 ? finished / seconds : 0;
    const eta = rate > 0 ? Math.ceil((this.total - finished) / rate) : undefined;
    const counts =
      ` ${finished}/${this.total}  done ${this.done}  failed ${this.failed}` +
      `  ${rate.toFixed(1)}/s${eta === undefined ? '' : `  eta ${eta}s`}`;
    const width = Math.max(10, Math.min(40, (this.stream.columns ?? 80) - counts.length - 3));
    const filled = Math.round((finished / this.total) * width);
    this.stream.write(`${CLEAR_LINE}[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]${counts}`);
  }

  clear(): void {
    if (!this.finished && this.drawnAt > 0) this.stream.write(CLEAR_LINE);
  }

  /** Takes the line away for good, before the summary. */
  finish(): void {
    this.clear();
    this.finished = true;
  }
}
