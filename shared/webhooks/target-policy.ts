import ipaddr from 'ipaddr.js';

export interface TargetPolicyOptions {
  /** Allow every address, private and loopback included (development and tests). */
  allowPrivate: boolean;
  /** Host names (lower case, IPv6 without brackets) allowed whatever they resolve to. */
  allowedHosts: readonly string[];
}

export type TargetVerdict = { allowed: true; url: URL } | { allowed: false; reason: string };

const MAX_URL_LENGTH = 2048;

/**
 * IPv4-compatible IPv6 addresses (`::a.b.c.d`, deprecated by RFC 4291), which ipaddr.js calls
 * unicast: on a stack that still routes them they reach the embedded IPv4 address (`::127.0.0.1`).
 * `::` and `::1` are in this block too, and keep their own names.
 */
const IPV4_COMPATIBLE = ipaddr.IPv6.parseCIDR('::/96');

/**
 * Decides which webhook targets the service may call, against server-side request forgery: only
 * http(s), and only addresses in public unicast space. Every IPv4 spelling (decimal, hex, octal,
 * short forms) is normalised by the WHATWG URL parser and classified by ipaddr.js, whose range
 * table covers private, loopback, link-local (cloud metadata at 169.254.169.254), CGNAT,
 * unique-local (fd00:ec2::254), multicast, unspecified, IPv4-mapped and IPv4-translated IPv6,
 * NAT64, 6to4, Teredo and the reserved and documentation blocks; anything but `unicast` is refused,
 * and so is IPv4-compatible IPv6 (`::127.0.0.1`), which ipaddr.js counts as unicast.
 *
 * Host names are checked twice: their literal form here, at submission, and the address actually
 * connected to at delivery ({@link TargetPolicy.checkAddress} in the connection's DNS lookup), so a
 * name that resolves to a private address, or changes its answer later (DNS rebinding), is caught.
 */
export class TargetPolicy {
  private readonly allowedHosts: ReadonlySet<string>;

  constructor(private readonly options: TargetPolicyOptions) {
    this.allowedHosts = new Set(options.allowedHosts.map((h) => h.toLowerCase()));
  }

  /** Whether a URL may be called, judged from the URL alone (its scheme and any IP literal). */
  checkUrl(raw: string): TargetVerdict {
    if (raw.length > MAX_URL_LENGTH) {
      return { allowed: false, reason: `longer than ${MAX_URL_LENGTH} characters` };
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return { allowed: false, reason: `"${raw}" is not an absolute URL` };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return { allowed: false, reason: `scheme ${url.protocol} is not allowed; use http or https` };
    }
    if (url.username || url.password) {
      return { allowed: false, reason: 'credentials in the URL are not accepted' };
    }
    const host = hostOf(url);
    if (this.isAllowedHost(host) || !ipaddr.isValid(host)) return { allowed: true, url };
    const verdict = this.checkAddress(host);
    return verdict.allowed ? { allowed: true, url } : verdict;
  }

  /** Whether the service may connect to this IP address (any spelling ipaddr.js parses). */
  checkAddress(address: string): { allowed: true } | { allowed: false; reason: string } {
    if (this.options.allowPrivate) return { allowed: true };
    let parsed: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      parsed = ipaddr.parse(address);
    } catch {
      return { allowed: false, reason: `"${address}" is not an IP address` };
    }
    const range = rangeOf(parsed);
    return range === 'unicast'
      ? { allowed: true }
      : { allowed: false, reason: `${parsed.toString()} is a ${range} address, not a public one` };
  }

  /** Hosts exempt from the address check (an allow-list entry, or every host when allowed). */
  isAllowedHost(host: string): boolean {
    return this.options.allowPrivate || this.allowedHosts.has(host.toLowerCase());
  }
}

/** ipaddr.js' name for the address's range, with the IPv4-compatible block told apart. */
function rangeOf(address: ipaddr.IPv4 | ipaddr.IPv6): string {
  const range = address.range();
  return range === 'unicast' && address.kind() === 'ipv6' && address.match(IPV4_COMPATIBLE)
    ? 'ipv4Compatible'
    : range;
}

/** The URL's host as resolvers and ipaddr.js expect it: IPv6 literals without brackets. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
}
