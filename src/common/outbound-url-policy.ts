import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { DomainException, ErrorCode } from './domain.exception';

/**
 * Addresses a URL Berth (or a session's browser) will fetch may not lead to
 * unless an allow-list permits them: the host itself, the network Berth runs
 * in, and the cloud's metadata service. Berth runs inside the deployment, so
 * an unchecked URL from a client is a server-side request forgery.
 */
const FORBIDDEN: [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'], // "this network"
  ['10.0.0.0', 8, 'ipv4'], // private
  ['100.64.0.0', 10, 'ipv4'], // CGNAT
  ['127.0.0.0', 8, 'ipv4'], // loopback
  ['169.254.0.0', 16, 'ipv4'], // link-local, incl. 169.254.169.254 metadata
  ['172.16.0.0', 12, 'ipv4'], // private
  ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
  ['192.168.0.0', 16, 'ipv4'], // private
  ['198.18.0.0', 15, 'ipv4'], // benchmarking
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved, broadcast
  ['::', 128, 'ipv6'], // unspecified
  ['::1', 128, 'ipv6'], // loopback
  ['fc00::', 7, 'ipv6'], // unique local, incl. fd00:ec2::254 metadata
  ['fe80::', 10, 'ipv6'], // link-local
  ['ff00::', 8, 'ipv6'], // multicast
];

function forbiddenList(): BlockList {
  const list = new BlockList();
  for (const [network, prefix, type] of FORBIDDEN) list.addSubnet(network, prefix, type);
  return list;
}

/** The IPv4 address an IPv6 one embeds (::ffff:a.b.c.d, 64:ff9b::a.b.c.d), which is what it reaches. */
function embeddedIpv4(address: string): string | null {
  const match = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (match) return match[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (!hex) return null;
  const high = parseInt(hex[1], 16);
  const low = parseInt(hex[2], 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

export class UrlRefused extends DomainException {
  constructor(message: string) {
    super(ErrorCode.InvalidRequest, message);
  }
}

/**
 * Checks a URL a client gave Berth to fetch (a browser's start_url, a
 * webhook): http or https only, no credentials, and every address its host
 * resolves to must be public or explicitly allowed (`allow`: host names,
 * `*.domain` for every subdomain of a domain, and CIDRs). `field` names it in messages, and `allowVariable` says how to permit it.
 */
export class OutboundUrlPolicy {
  private readonly forbidden = forbiddenList();
  private readonly allowedHosts = new Set<string>();
  /** `*.corp.example` entries, kept as `.corp.example`: any subdomain (not the domain itself), as the browser agent reads them. */
  private readonly allowedSuffixes: string[] = [];
  private readonly allowedNetworks = new BlockList();

  constructor(
    allow: string[],
    private readonly field: string,
    private readonly allowVariable: string,
  ) {
    for (const entry of allow) {
      const [address, prefix] = entry.split('/');
      const family = isIP(address);
      if (family === 0 && entry.startsWith('*.')) {
        this.allowedSuffixes.push(entry.slice(1).toLowerCase());
      } else if (family === 0) {
        this.allowedHosts.add(entry.toLowerCase());
      } else {
        const type = family === 6 ? 'ipv6' : 'ipv4';
        this.allowedNetworks.addSubnet(address, prefix ? Number(prefix) : family === 6 ? 128 : 32, type);
      }
    }
  }

  async check(raw: string): Promise<void> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new UrlRefused(`${this.field} must be an absolute URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UrlRefused(`${this.field} must be http or https`);
    if (url.username || url.password) throw new UrlRefused(`${this.field} must not carry credentials`);
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    if (this.allowedHosts.has(host) || this.allowedSuffixes.some((suffix) => host.endsWith(suffix))) return;
    const addresses = isIP(host) ? [host] : await this.resolve(host);
    for (const address of addresses) {
      if (!this.permitted(address)) {
        throw new UrlRefused(
          `${this.field} host ${host} resolves to ${address}, a loopback, private, link-local, CGNAT or metadata address; ` +
            `add it to ${this.allowVariable} to permit it`,
        );
      }
    }
  }

  /** Public, or allowed by START_URL_ALLOW. */
  permitted(address: string): boolean {
    const family = isIP(address);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (this.allowedNetworks.check(address, type)) return true;
    const v4 = family === 6 ? embeddedIpv4(address) : null;
    if (v4) return this.permitted(v4);
    return !this.forbidden.check(address, type);
  }

  private async resolve(host: string): Promise<string[]> {
    try {
      const found = await Promise.race([
        lookup(host, { all: true, verbatim: true }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), 3000).unref()),
      ]);
      return found.map((entry) => entry.address);
    } catch (error) {
      throw new UrlRefused(`${this.field} host ${host} could not be resolved (${(error as Error).message})`);
    }
  }
}
