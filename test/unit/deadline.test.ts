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

describe('how far ahead a deadline may lie', () => {
  const MONTH_S = 30 * 24 * 3600;

  it('takes up to 30 days, in every form', () => {
    expect(parseDeadlineField(String(MONTH_S), NOW)).toBe(NOW + MONTH_S * 1000);
    expect(parseDeadlineField('2026-03-31T12:00:00Z', NOW)).toBe(NOW + MONTH_S * 1000);
    expect(parseCancelAfter('720h', NOW)).toBe(NOW + MONTH_S * 1000);
  });

  it('refuses anything further, however large, with a message', () => {
    for (const value of [String(MONTH_S + 1), '999999999', '9999-12-31T23:59:59Z']) {
      expect(parseDeadlineField(value, NOW), value).toMatch(/at most 30 days ahead/);
    }
    for (const value of ['721h', '999999999h999999999h999999999h', '999999999']) {
      expect(parseCancelAfter(value, NOW), value).toMatch(/at most 30 days ahead/);
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
