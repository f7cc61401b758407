import type { LookupAddress, LookupOptions } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { TargetPolicy } from '../../shared/webhooks/target-policy.js';
import { ADDRESS_REFUSED, guardedLookup } from '../../workers/webhooks/guarded-lookup.js';

type Resolver = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/** A resolver with fixed answers, standing in for DNS (a rebinding server answers what it likes). */
function fakeDns(answers: Record<string, string[]>): Resolver {
  return (hostname, _options, callback) => {
    const addresses = answers[hostname];
    if (!addresses) {
      callback(
        Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }),
        [],
      );
      return;
    }
    callback(
      null,
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  };
}

function lookup(
  policy: TargetPolicy,
  dns: Resolver,
  hostname: string,
  all: boolean,
): Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }> {
  const guarded = guardedLookup(policy, dns as never);
  return new Promise((resolve) =>
    guarded(hostname, { all }, (err, address, family) =>
      resolve({ err, address, ...(family !== undefined ? { family } : {}) }),
    ),
  );
}

const strict = new TargetPolicy({ allowPrivate: false, allowedHosts: ['intranet.example'] });
const dns = fakeDns({
  'public.example': ['93.184.216.34'],
  'rebound.example': ['127.0.0.1'],
  'metadata.example': ['169.254.169.254', 'fd00:ec2::254'],
  'compatible.example': ['::7f00:1'], // IPv4-compatible IPv6 of 127.0.0.1
  'mixed.example': ['10.0.0.7', '93.184.216.34'],
  'intranet.example': ['10.1.1.1'],
});

describe('guarded DNS lookup for webhook connections', () => {
  it('passes public addresses, in both callback forms', async () => {
    expect(await lookup(strict, dns, 'public.example', false)).toEqual({
      err: null,
      address: '93.184.216.34',
      family: 4,
    });
    const all = await lookup(strict, dns, 'public.example', true);
    expect(all.address).toEqual([{ address: '93.184.216.34', family: 4 }]);
  });

  it('refuses a name whose every address is non-public (DNS rebinding to loopback, metadata)', async () => {
    for (const host of ['rebound.example', 'metadata.example', 'compatible.example']) {
      const { err } = await lookup(strict, dns, host, true);
      expect(err?.code).toBe(ADDRESS_REFUSED);
      expect(err?.message).toContain(`${host} resolves to no public address`);
    }
  });

  it('drops the non-public addresses of a mixed answer', async () => {
    const { address } = await lookup(strict, dns, 'mixed.example', true);
    expect(address).toEqual([{ address: '93.184.216.34', family: 4 }]);
  });

  it('lets allow-listed hosts through whatever they resolve to; passes DNS errors on', async () => {
    expect((await lookup(strict, dns, 'intranet.example', false)).address).toBe('10.1.1.1');
    expect((await lookup(strict, dns, 'nowhere.example', false)).err?.code).toBe('ENOTFOUND');
  });
});
