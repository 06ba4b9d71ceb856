import { signatureHeader, verifySignature } from './webhook-signature';

describe('webhook signatures', () => {
  const body = JSON.stringify({ type: 'started', session_id: 'x' });
  const at = new Date('2026-11-26T12:00:00Z');

  it('sign the timestamp and the body with HMAC-SHA256', () => {
    const header = signatureHeader('secret', body, at);
    expect(header).toMatch(/^t=1795694400,v1=[0-9a-f]{64}$/);
    expect(verifySignature('secret', body, header, at)).toBe(true);
  });

  it('fail for another secret, another body, a stale timestamp or garbage', () => {
    const header = signatureHeader('secret', body, at);
    expect(verifySignature('other', body, header, at)).toBe(false);
    expect(verifySignature('secret', `${body} `, header, at)).toBe(false);
    expect(verifySignature('secret', body, header, new Date(at.getTime() + 301_000))).toBe(false);
    expect(verifySignature('secret', body, 't=abc,v1=00', at)).toBe(false);
    expect(verifySignature('secret', body, undefined, at)).toBe(false);
  });
});
