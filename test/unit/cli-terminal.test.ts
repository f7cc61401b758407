import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Terminal } from '../../client/cli/terminal.js';

const CLEAR_LINE = '\r\x1b[K';

/** A stream that keeps what is written, as a terminal (isTTY) or as a pipe. */
function capture(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk.toString());
        done();
      },
    }),
    { isTTY, columns: 80 },
  );
  // The escape that clears a line, made visible.
  return { stream, text: () => chunks.join('').replaceAll(CLEAR_LINE, '<clear>') };
}

describe('the CLI terminal', () => {
  it('draws a progress bar on a terminal and takes it away around each result line', () => {
    const stdout = capture(false);
    const stderr = capture(true);
    const terminal = new Terminal({ stdout: stdout.stream, stderr: stderr.stream }, false);
    const bar = terminal.progress(2)!;
    bar.tick('done');
    expect(stderr.text()).toMatch(/^<clear>\[#+-+\] 1\/2 {2}done 1 {2}failed 0 {2}[\d.]+\/s/);

    const before = stderr.text().length;
    terminal.result({}, 'a.png  red 1.000');
    // The bar's line is cleared before the result and drawn again after it.
    expect(stderr.text().slice(before)).toMatch(/^<clear><clear>\[#+-+\] 1\/2/);
    expect(stdout.text()).toBe('a.png  red 1.000\n');

    bar.tick('failed');
    bar.finish();
    terminal.note('2 images: 1 done, 1 failed');
    expect(stderr.text()).toMatch(
      /2\/2 {2}done 1 {2}failed 1 .*<clear>2 images: 1 done, 1 failed\n$/,
    );
  });

  it.each([
    ['stderr is not a terminal', false, false],
    ['--json', true, true],
  ])('draws nothing when %s', (_case, isTTY, json) => {
    const stdout = capture(false);
    const stderr = capture(isTTY);
    const terminal = new Terminal({ stdout: stdout.stream, stderr: stderr.stream }, json);
    expect(terminal.progress(10)).toBeUndefined();
    terminal.result({ file: 'a.png' }, 'a.png  red 1.000');
    expect(stderr.text()).toBe('');
    expect(stdout.text()).toBe(json ? '{"file":"a.png"}\n' : 'a.png  red 1.000\n');
  });
});
