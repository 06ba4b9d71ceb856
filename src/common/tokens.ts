import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

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
  const actual = Buffer.from(hashToken(token), 'hex');
  const expected = Buffer.from(expectedHash, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
