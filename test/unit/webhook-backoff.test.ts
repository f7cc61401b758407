import { describe, expect, it } from 'vitest';
import {
  deferralDelay,
  RetryableDeliveryError,
  webhookBackoff,
} from '../../workers/webhooks/webhook-processor.js';
import { parseRetryAfter } from '../../workers/webhooks/webhook-sender.js';

describe('webhook retry delays', () => {
  it('put a message whose tenant is at its cap back for 100 ms, doubling, less up to half, capped', () => {
    for (const [deferrals, nominal] of [
      [1, 100],
      [2, 200],
      [4, 800],
      [30, 5000],
    ] as const) {
      const delay = deferralDelay(deferrals, 5000);
      expect(delay).toBeLessThanOrEqual(nominal);
      expect(delay).toBeGreaterThanOrEqual(nominal / 2);
    }
  });

  it('grow exponentially from the base, with at most 20% jitter, up to the cap', () => {
    for (const [attempts, nominal] of [
      [1, 1000],
      [2, 2000],
      [3, 4000],
      [5, 16_000],
    ] as const) {
      const delay = webhookBackoff(attempts, new Error('HTTP 500'), 1000, 60_000);
      expect(delay).toBeLessThanOrEqual(nominal);
      expect(delay).toBeGreaterThanOrEqual(nominal * 0.8);
    }
    expect(webhookBackoff(20, undefined, 1000, 60_000)).toBe(60_000);
  });

  it("honour the receiver's Retry-After, capped", () => {
    expect(webhookBackoff(1, new RetryableDeliveryError('HTTP 429', 7000), 1000, 60_000)).toBe(
      7000,
    );
    expect(webhookBackoff(1, new RetryableDeliveryError('HTTP 503', 3_600_000), 1000, 60_000)).toBe(
      60_000,
    );
  });

  it('parse Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-03-01T12:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Sun, 01 Mar 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(['5', '9'], now)).toBe(5000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
