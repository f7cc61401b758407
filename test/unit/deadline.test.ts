import { describe, expect, it } from 'vitest';
import { parseCancelAfter, parseDeadlineField } from '../../api/http/deadline.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

describe('deadline field', () => {
  it('reads seconds from now and RFC 3339 times', () => {
    expect(parseDeadlineField('30', NOW)).toBe(NOW + 30_000);
    expect(parseDeadlineField('1.5', NOW)).toBe(NOW + 1500);
    expect(parseDeadlineField('2026-03-01T12:05:00Z', NOW)).toBe(NOW + 300_000);
    expect(parseDeadlineField('2026-03-01T13:05:00.250+01:00', NOW)).toBe(NOW + 300_250);
  });

  it('refuses anything else with a message', () => {
    for (const value of ['soon', '-5', '2026-03-01', '2026-03-01T12:05:00', '1e3', '30s']) {
      expect(typeof parseDeadlineField(value, NOW), value).toBe('string');
    }
  });
});

describe('Cancel-After header', () => {
  it('reads durations and bare seconds', () => {
    expect(parseCancelAfter('30s', NOW)).toBe(NOW + 30_000);
    expect(parseCancelAfter('5m', NOW)).toBe(NOW + 300_000);
    expect(parseCancelAfter('1h30m', NOW)).toBe(NOW + 5_400_000);
    expect(parseCancelAfter('1500ms', NOW)).toBe(NOW + 1500);
    expect(parseCancelAfter('1.5S', NOW)).toBe(NOW + 1500);
    expect(parseCancelAfter('45', NOW)).toBe(NOW + 45_000);
  });

  it('refuses what is not a duration', () => {
    for (const value of ['', 'soon', '5 minutes', '-1s', '1d', 'm5']) {
      expect(typeof parseCancelAfter(value, NOW), value).toBe('string');
    }
  });
});
