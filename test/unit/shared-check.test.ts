import { describe, expect, it } from 'vitest';
import { sharedCheck } from '../../api/health/shared-check.js';

/** A check whose every run the test settles by hand. */
function controlledCheck() {
  const runs: { resolve(): void; reject(err: Error): void }[] = [];
  const check = () =>
    new Promise<void>((resolve, reject) => {
      runs.push({ resolve, reject });
    });
  return { check, runs };
}

describe('sharedCheck', () => {
  it('runs one check for callers that come while it runs, and reuses its answer for reuseMs', async () => {
    const clock = { now: 0 };
    const { check, runs } = controlledCheck();
    const shared = sharedCheck(check, { reuseMs: 1000, now: () => clock.now });

    const waiting = [shared(), shared(), shared()];
    expect(runs).toHaveLength(1);
    runs[0]!.resolve();
    await Promise.all(waiting);

    clock.now += 999;
    await shared();
    expect(runs).toHaveLength(1);

    clock.now += 1;
    const next = shared();
    expect(runs).toHaveLength(2);
    runs[1]!.resolve();
    await next;
  });

  it('shares a failure like a success, and checks again once it is stale', async () => {
    const clock = { now: 0 };
    const { check, runs } = controlledCheck();
    const shared = sharedCheck(check, { reuseMs: 1000, now: () => clock.now });

    const first = shared();
    runs[0]!.reject(new Error('storage down'));
    await expect(first).rejects.toThrow('storage down');
    await expect(shared()).rejects.toThrow('storage down');
    expect(runs).toHaveLength(1);

    clock.now += 1000;
    const again = shared();
    expect(runs).toHaveLength(2);
    runs[1]!.resolve();
    await expect(again).resolves.toBeUndefined();
  });

  it('keeps a slow check shared until it settles, however long it takes', async () => {
    const clock = { now: 0 };
    const { check, runs } = controlledCheck();
    const shared = sharedCheck(check, { reuseMs: 1000, now: () => clock.now });
    const first = shared();
    clock.now += 5000;
    expect(shared()).toBe(first);
    expect(runs).toHaveLength(1);
    runs[0]!.resolve();
    await first;
  });

  it('turns a check that throws at once into a rejected answer', async () => {
    const shared = sharedCheck(
      () => {
        throw new Error('no client');
      },
      { reuseMs: 1000 },
    );
    await expect(shared()).rejects.toThrow('no client');
  });
});
