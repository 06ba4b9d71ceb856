import type { IncomingHttpHeaders } from 'node:http';
import { SessionAddressForm } from '../sessions/session-urls';

/**
 * How a request proves it may reach a session, and how the gateway removes
 * that proof before forwarding. Pure functions, unit-tested.
 *
 * - host form (the session's own origin): `?token=` (swapped for a host-only
 *   cookie), the cookie, or `Authorization: Bearer`.
 * - path form (under PUBLIC_URL, for programs): `Authorization: Bearer` or
 *   `?token=` only; cookies are neither read nor set, because every session
 *   shares PUBLIC_URL's origin there.
 */
export type CredentialSource = 'query' | 'cookie' | 'bearer';

export interface Credential {
  token: string;
  source: CredentialSource;
}

/** Host-only cookie. `__Host-` (Secure, no Domain, Path=/) when pages are served over TLS. */
export function cookieName(secure: boolean): string {
  return secure ? '__Host-berth_token' : 'berth_token';
}

/** Tokens are base64url; anything else cannot be one and is not worth hashing. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,128}$/;

export function findCredential(headers: IncomingHttpHeaders, url: string, form: SessionAddressForm, secure: boolean): Credential | null {
  const query = queryToken(url);
  if (query !== null) return TOKEN_SHAPE.test(query) ? { token: query, source: 'query' } : null;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '')?.[1];
  if (bearer) return TOKEN_SHAPE.test(bearer) ? { token: bearer, source: 'bearer' } : null;
  if (form === 'host') {
    const cookie = cookieValue(headers.cookie, cookieName(secure));
    if (cookie) return TOKEN_SHAPE.test(cookie) ? { token: cookie, source: 'cookie' } : null;
  }
  return null;
}

/** The value of `token` in the query string, or null. Cheap when absent (the common case). */
export function queryToken(url: string): string | null {
  const q = url.indexOf('?');
  if (q < 0 || url.indexOf('token=', q) < 0) return null;
  return new URLSearchParams(url.slice(q + 1)).get('token');
}

/** `url` without its `token` query parameter (other parameters kept, in order). */
export function withoutQueryToken(url: string): string {
  const q = url.indexOf('?');
  if (q < 0 || url.indexOf('token=', q) < 0) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  params.delete('token');
  const rest = params.toString();
  return rest ? `${url.slice(0, q)}?${rest}` : url.slice(0, q);
}

export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** The Cookie header minus the gateway's own cookie; null when nothing is left. */
export function cookieHeaderWithout(header: string | undefined, name: string): string | null {
  if (!header) return null;
  const kept = header
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part && part.slice(0, part.indexOf('=')).trim() !== name);
  return kept.length ? kept.join('; ') : null;
}

export function sessionCookie(token: string, secure: boolean): string {
  // HttpOnly: page scripts cannot read it. SameSite=Lax: sent on a top-level
  // navigation from a link (Strict would drop it after a cross-site redirect).
  // No Domain: host-only, so another session's origin never receives it.
  return `${cookieName(secure)}=${token}; Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

/**
 * Cookie-authenticated requests are the ones a hostile page could make a
 * browser send. Every session origin is same-site with every other
 * (`*.localhost`, `*.sessions.example.com`), so SameSite does not stop one
 * session's page from calling another's: the Origin header must be the
 * session's own for WebSocket upgrades and state-changing requests.
 */
export function originAllowed(credential: Credential, headers: IncomingHttpHeaders, method: string, upgrade: boolean, sessionOrigin: string): boolean {
  if (credential.source !== 'cookie') return true; // a header or query token is never attached by a browser on its own
  const origin = headers.origin;
  // Browsers always send Origin on WebSocket upgrades and unsafe methods; a
  // client that sends none is not a browser being abused.
  if (!origin) return true;
  if (!upgrade && (method === 'GET' || method === 'HEAD' || method === 'OPTIONS')) return true;
  return origin.toLowerCase() === sessionOrigin.toLowerCase();
}
