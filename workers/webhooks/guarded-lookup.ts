import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { TargetPolicy } from '../../shared/webhooks/target-policy.js';

/** The error code of a connection refused by the target policy (not a network failure). */
export const ADDRESS_REFUSED = 'ERR_WEBHOOK_ADDRESS_REFUSED';

/**
 * A DNS lookup for outgoing webhook connections that drops every address the policy refuses, and
 * fails when none is left. It runs inside the connection attempt, so the address checked is the
 * address connected to: a name that resolves to a private address, or is re-pointed there after
 * the submission was checked (DNS rebinding), is refused. IP-literal hosts skip DNS (and this
 * lookup), so their URL is checked before each request instead.
 */
export function guardedLookup(policy: TargetPolicy, resolve = dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) {
        callback(err, '', 0);
        return;
      }
      const allowed = policy.isAllowedHost(hostname)
        ? addresses
        : addresses.filter((a) => policy.checkAddress(a.address).allowed);
      if (allowed.length === 0) {
        const reasons = addresses.map((a) => {
          const verdict = policy.checkAddress(a.address);
          return verdict.allowed ? a.address : verdict.reason;
        });
        const refused = Object.assign(
          new Error(`${hostname} resolves to no public address (${reasons.join('; ')})`),
          { code: ADDRESS_REFUSED },
        );
        callback(refused, '', 0);
        return;
      }
      if (options.all) {
        (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      } else {
        callback(null, allowed[0]!.address, allowed[0]!.family);
      }
    });
  };
}
