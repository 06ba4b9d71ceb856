import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Session secrets are 256 random bits, so a single SHA-256 is enough to store
 * them safely: there is nothing to brute-force, and verifying stays cheap on
 * hot paths (callbacks, and later the gateway on every request).
 */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function tokenMatches(token: string, expectedHash: string): boolean {
  return tokenMatchesAny(token, [expectedHash]);
}

/** True when `token` hashes to one of `hashes`; every comparison is constant-time and all are made. */
export function tokenMatchesAny(token: string, hashes: readonly string[]): boolean {
  const actual = createHash('sha256').update(token, 'utf8').digest();
  let matched = false;
  for (const hash of hashes) {
    const expected = Buffer.from(hash, 'hex');
    if (expected.length === actual.length && timingSafeEqual(actual, expected)) matched = true;
  }
  return matched;
}

/**
 * Secrets Berth derives instead of storing: the gateway, the API and the
 * worker compute the same value from BERTH_SECRET_KEY, and a database dump
 * reveals none of them. `purpose` keeps secrets for different uses apart.
 */
export type DerivedSecretPurpose = 'session-upstream' | 'callback' | 'pool' | 'webhook';

export function deriveSecret(key: string, purpose: DerivedSecretPurpose, subject: string): string {
  return createHmac('sha256', key).update(`${purpose}:${subject}`, 'utf8').digest('base64url');
}
