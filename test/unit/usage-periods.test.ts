import { describe, expect, it } from 'vitest';
import {
  daysBetween,
  nextUtcDay,
  nextUtcMonth,
  parseUtcDay,
  utcDay,
  utcMonth,
} from '../../shared/usage/usage-periods.js';

describe('usage periods (UTC days and months)', () => {
  it('names an instant by its UTC day and month, whatever the local zone', () => {
    const lateEvening = Date.UTC(2026, 10, 30, 23, 59, 59, 999);
    expect(utcDay(lateEvening)).toBe('2026-11-30');
    expect(utcMonth(lateEvening)).toBe('2026-11');
    expect(nextUtcDay(lateEvening)).toBe(Date.UTC(2026, 11, 1));
    expect(nextUtcDay(Date.UTC(2026, 11, 1))).toBe(Date.UTC(2026, 11, 2));
  });

  it('ends a month on the first of the next, across a year and a leap February', () => {
    expect(nextUtcMonth(Date.UTC(2026, 11, 31, 12))).toBe(Date.UTC(2027, 0, 1));
    expect(nextUtcMonth(Date.UTC(2028, 1, 29))).toBe(Date.UTC(2028, 2, 1));
  });

  it('reads real dates only, and lists the days of a range with both ends', () => {
    expect(parseUtcDay('2028-02-29')).toBe(Date.UTC(2028, 1, 29));
    for (const bad of ['2026-02-29', '2026-13-01', '2026-1-01', '20261101', '2026-11-01T00:00Z']) {
      expect(parseUtcDay(bad)).toBeUndefined();
    }
    expect(daysBetween(parseUtcDay('2026-12-30')!, parseUtcDay('2027-01-02')!)).toEqual([
      '2026-12-30',
      '2026-12-31',
      '2027-01-01',
      '2027-01-02',
    ]);
  });
});
