import ipaddr from 'ipaddr.js';

/**
 * Which peers' `X-Forwarded-For` the API believes, in the form Fastify's `trustProxy` takes:
 * `false` (none: the client is the socket's peer, and a forged header changes nothing), a hop
 * count, `true` (any peer: only behind a proxy that overwrites the header), or a list of addresses
 * and CIDRs (and proxy-addr's names `loopback`, `linklocal`, `uniquelocal`).
 */
export type TrustProxy = boolean | number | string[];

const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** A parsed setting, or a message naming what is wrong with it. */
export type Parsed<T> = { value: T } | { error: string };

export function parseTrustProxy(value: string | undefined): Parsed<TrustProxy> {
  if (value === undefined || /^(false|no|off|0)$/i.test(value)) return { value: false };
  if (/^(true|yes|on)$/i.test(value)) return { value: true };
  if (/^\d+$/.test(value)) return { value: Number(value) };
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  for (const entry of entries) {
    if (NAMED_RANGES.has(entry)) continue;
    const [address = '', bits] = entry.split('/', 2);
    const valid = isAddress(address) && (bits === undefined || isCidr(entry));
    if (!valid) {
      return {
        error: `"${entry}" is not an IP address, a CIDR, or one of ${[...NAMED_RANGES].join(', ')}`,
      };
    }
  }
  return { value: entries };
}

/** Written in full: `1.2.3` is a valid IPv4 address to ipaddr.js (1.2.0.3), never what was meant. */
function isAddress(value: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(value) || ipaddr.IPv6.isValid(value);
}

function isCidr(entry: string): boolean {
  try {
    ipaddr.parseCIDR(entry);
    return true;
  } catch {
    return false;
  }
}

/** `*`, or a list of origins (`scheme://host[:port]`, nothing after). */
export function parseCorsOrigins(value: string | undefined): Parsed<'*' | string[]> {
  if (value === undefined) return { value: [] };
  if (value.trim() === '*') return { value: '*' };
  const origins = value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  for (const origin of origins) {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return { error: `"${origin}" is not an origin (scheme://host[:port])` };
    }
    if (!/^https?:$/.test(url.protocol) || url.origin !== origin.replace(/\/$/, '')) {
      return { error: `"${origin}" is not an origin (scheme://host[:port], no path)` };
    }
  }
  return { value: origins.map((origin) => origin.replace(/\/$/, '')) };
}
