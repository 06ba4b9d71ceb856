import { generateToken, hashToken, tokenMatches } from './tokens';

describe('session secrets', () => {
  it('are 256-bit, URL-safe and unique', () => {
    const token = generateToken();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(generateToken()).not.toBe(token);
  });

  it('are stored as SHA-256 hex and verified against it', () => {
    const token = generateToken();
    const hash = hashToken(token);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hash).not.toContain(token);
    expect(tokenMatches(token, hash)).toBe(true);
    expect(tokenMatches(`${token}x`, hash)).toBe(false);
    expect(tokenMatches(token, 'not-a-hash')).toBe(false);
  });
});
