import { describe, expect, it } from 'vitest';
import { parsePrefer, planWait } from '../../api/http/prefer.js';

describe('parsePrefer (RFC 7240)', () => {
  it('no header: synchronous, no wait', () => {
    expect(parsePrefer(undefined)).toEqual({ respondAsync: false });
    expect(parsePrefer('')).toEqual({ respondAsync: false });
    expect(parsePrefer([])).toEqual({ respondAsync: false });
  });

  it('respond-async', () => {
    expect(parsePrefer('respond-async')).toEqual({ respondAsync: true });
  });

  it('wait=N in seconds', () => {
    expect(parsePrefer('wait=10')).toEqual({ respondAsync: false, wait: 10 });
    expect(parsePrefer('wait=0')).toEqual({ respondAsync: false, wait: 0 });
  });

  it('both in one header, in either order, with spaces', () => {
    expect(parsePrefer('respond-async, wait=5')).toEqual({ respondAsync: true, wait: 5 });
    expect(parsePrefer('wait = 5 ,respond-async')).toEqual({ respondAsync: true, wait: 5 });
  });

  it('tokens are case-insensitive', () => {
    expect(parsePrefer('Respond-Async, WAIT=3')).toEqual({ respondAsync: true, wait: 3 });
  });

  it('a quoted value', () => {
    expect(parsePrefer('wait="7"')).toEqual({ respondAsync: false, wait: 7 });
  });

  it('several header lines', () => {
    expect(parsePrefer(['respond-async', 'wait=12'])).toEqual({ respondAsync: true, wait: 12 });
  });

  it('ignores parameters after a semicolon', () => {
    expect(parsePrefer('respond-async; foo=bar, wait=4; x')).toEqual({
      respondAsync: true,
      wait: 4,
    });
  });

  it('ignores unknown preferences and malformed values', () => {
    expect(parsePrefer('return=minimal, handling=lenient')).toEqual({ respondAsync: false });
    for (const junk of [
      'wait=',
      'wait',
      'wait=-1',
      'wait=1.5',
      'wait=abc',
      'wait=1e3',
      'wait=10s',
      'wait=1234567890',
      'wait="5',
    ]) {
      expect(parsePrefer(junk), junk).toEqual({ respondAsync: false });
    }
    expect(parsePrefer(',,, ; ,=, respond-async')).toEqual({ respondAsync: true });
  });

  it('a bad wait does not undo a good one', () => {
    expect(parsePrefer('wait=8, wait=soon')).toEqual({ respondAsync: false, wait: 8 });
  });

  it('does not take a look-alike token for respond-async', () => {
    expect(parsePrefer('respond-asynchronously, no-respond-async')).toEqual({
      respondAsync: false,
    });
  });
});

describe('parsePrefer: a preference given twice', () => {
  it('keeps the first', () => {
    expect(parsePrefer('wait=10, wait=0')).toEqual({ respondAsync: false, wait: 10 });
    expect(parsePrefer(['wait=3', 'wait=99'])).toEqual({ respondAsync: false, wait: 3 });
  });
});

describe('planWait', () => {
  const sync = { defaultWaitMs: 30_000, maxWaitMs: 120_000 };

  it('waits the default with no preference', () => {
    expect(planWait(parsePrefer(undefined), sync)).toEqual({ waitMs: 30_000, mode: 'sync' });
  });

  it('answers at once for respond-async alone, as an async submission', () => {
    expect(planWait(parsePrefer('respond-async'), sync)).toEqual({
      waitMs: 0,
      mode: 'async',
      applied: 'respond-async',
    });
  });

  it('waits up to N seconds for respond-async with wait=N (RFC 7240)', () => {
    expect(planWait(parsePrefer('respond-async, wait=10'), sync)).toEqual({
      waitMs: 10_000,
      mode: 'sync',
      applied: 'respond-async, wait=10',
    });
  });

  it('caps the wait and says what it applied', () => {
    expect(planWait(parsePrefer('wait=600'), sync)).toEqual({
      waitMs: 120_000,
      mode: 'sync',
      applied: 'wait=120',
    });
  });

  it('treats wait=0 as an async submission: no fast lane for a request that will not wait', () => {
    expect(planWait(parsePrefer('wait=0'), sync)).toEqual({
      waitMs: 0,
      mode: 'async',
      applied: 'wait=0',
    });
  });
});
