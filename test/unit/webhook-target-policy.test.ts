import { describe, expect, it } from 'vitest';
import { TargetPolicy } from '../../shared/webhooks/target-policy.js';

const strict = new TargetPolicy({ allowPrivate: false, allowedHosts: [] });

describe('webhook target policy (SSRF)', () => {
  // Every spelling a URL parser or resolver may turn into a non-public address.
  const refused: [string, RegExp][] = [
    ['http://127.0.0.1/', /loopback/],
    ['http://127.255.255.254:8080/', /loopback/],
    ['http://2130706433/', /loopback/], // decimal
    ['http://0x7f000001/', /loopback/], // hex
    ['http://0x7f.0x0.0x0.0x1/', /loopback/], // hex per octet
    ['http://0177.0.0.1/', /loopback/], // octal
    ['http://017700000001/', /loopback/], // octal, one number
    ['http://127.1/', /loopback/], // short form
    ['http://0/', /unspecified/],
    ['http://0.0.0.0/', /unspecified/],
    ['http://10.0.0.1/', /private/],
    ['http://172.16.5.4/', /private/],
    ['http://192.168.1.1/', /private/],
    ['http://192.168.257/', /private/], // short form: 192.168.1.1
    ['http://169.254.169.254/latest/meta-data/', /linkLocal/], // cloud metadata
    ['http://100.64.0.1/', /carrierGradeNat/],
    ['http://198.18.0.1/', /reserved/], // benchmarking
    ['http://224.0.0.1/', /multicast/],
    ['http://255.255.255.255/', /broadcast/],
    ['http://[::1]/', /loopback/],
    ['http://[::]/', /unspecified/],
    ['http://[0:0:0:0:0:0:0:1]/', /loopback/],
    ['http://[::ffff:127.0.0.1]/', /ipv4Mapped/],
    ['http://[::ffff:7f00:1]/', /ipv4Mapped/],
    ['http://[::ffff:169.254.169.254]/', /ipv4Mapped/],
    ['http://[fd00:ec2::254]/', /uniqueLocal/], // AWS metadata over IPv6
    ['http://[fc00::1]/', /uniqueLocal/],
    ['http://[fe80::1]/', /linkLocal/],
    ['http://[ff02::1]/', /multicast/],
    ['http://[64:ff9b::7f00:1]/', /rfc6052/], // NAT64 of 127.0.0.1
    ['http://[64:ff9b::127.0.0.1]/', /rfc6052/],
    ['http://[64:ff9b:1::10.0.0.1]/', /rfc6052/], // local-use NAT64 (RFC 8215)
    ['http://[::ffff:0:127.0.0.1]/', /rfc6145/], // IPv4-translated
    // IPv4-compatible (::/96, deprecated by RFC 4291): ipaddr.js calls these unicast.
    ['http://[::127.0.0.1]/', /ipv4Compatible/],
    ['http://[::7f00:1]/', /ipv4Compatible/],
    ['http://[::169.254.169.254]/', /ipv4Compatible/],
    ['http://[::10.0.0.1]/', /ipv4Compatible/],
    ['http://[0:0:0:0:0:0:a00:1]/', /ipv4Compatible/],
    ['http://[2002:7f00:1::]/', /6to4/],
    ['http://[2001:db8::1]/', /reserved/],
  ];
  it.each(refused)('refuses %s', (url, reason) => {
    const verdict = strict.checkUrl(url);
    expect(verdict.allowed).toBe(false);
    if (!verdict.allowed) expect(verdict.reason).toMatch(reason);
  });

  it('refuses schemes other than http(s), credentials, and what is not a URL', () => {
    for (const url of [
      'file:///etc/passwd',
      'gopher://example.com/',
      'ftp://example.com/',
      'javascript:alert(1)',
      'https://user:pass@example.com/',
      'example.com/hook',
      `https://example.com/${'a'.repeat(2100)}`,
    ]) {
      expect(strict.checkUrl(url).allowed, url).toBe(false);
    }
  });

  it('allows public addresses and host names (those are checked again at connect time)', () => {
    for (const url of [
      'https://example.com/hooks/ai',
      'http://8.8.8.8/',
      'http://[2001:4860:4860::8888]:8443/x',
      'http://localhost:3000/', // a name: its address is checked when connecting
    ]) {
      expect(strict.checkUrl(url).allowed, url).toBe(true);
    }
    expect(strict.checkAddress('93.184.216.34').allowed).toBe(true);
    expect(strict.checkAddress('2606:2800:220:1:248:1893:25c8:1946').allowed).toBe(true);
  });

  it('classifies resolved addresses in any spelling', () => {
    for (const address of [
      '127.0.0.1',
      '::1',
      '::ffff:10.0.0.1',
      '::10.0.0.1',
      '::a00:1',
      'fe80::1%eth0',
      '0x7f.1',
    ]) {
      expect(strict.checkAddress(address).allowed, address).toBe(false);
    }
    expect(strict.checkAddress('not-an-ip').allowed).toBe(false);
  });

  it('WEBHOOK_ALLOW_PRIVATE allows every address; the allow-list allows named hosts only', () => {
    const open = new TargetPolicy({ allowPrivate: true, allowedHosts: [] });
    expect(open.checkUrl('http://127.0.0.1:9000/').allowed).toBe(true);
    expect(open.checkAddress('10.0.0.1').allowed).toBe(true);
    expect(open.checkUrl('file:///etc/passwd').allowed).toBe(false);

    const listed = new TargetPolicy({
      allowPrivate: false,
      allowedHosts: ['hooks.internal', '10.0.0.5', '::1'],
    });
    expect(listed.checkUrl('http://hooks.internal/x').allowed).toBe(true);
    expect(listed.isAllowedHost('HOOKS.internal')).toBe(true);
    expect(listed.checkUrl('http://10.0.0.5/').allowed).toBe(true);
    expect(listed.checkUrl('http://[::1]/').allowed).toBe(true);
    expect(listed.checkUrl('http://10.0.0.6/').allowed).toBe(false);
    expect(listed.isAllowedHost('other.internal')).toBe(false);
  });
});
