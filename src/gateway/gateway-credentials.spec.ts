import {
  Credential,
  cookieHeaderWithout,
  cookieName,
  findCredential,
  originAllowed,
  queryToken,
  sessionCookie,
  withoutQueryToken,
} from './gateway-credentials';

const TOKEN = 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde';

describe('gateway credentials', () => {
  it('finds the token in the query, a bearer header, or (host form only) the cookie', () => {
    expect(findCredential({}, `/x?a=1&token=${TOKEN}`, 'path', false)).toEqual({ token: TOKEN, source: 'query' });
    expect(findCredential({ authorization: `Bearer ${TOKEN}` }, '/x', 'path', false)).toEqual({ token: TOKEN, source: 'bearer' });
    expect(findCredential({ cookie: `a=b; berth_token=${TOKEN}` }, '/x', 'host', false)).toEqual({ token: TOKEN, source: 'cookie' });
    // The path form shares PUBLIC_URL's origin between sessions: cookies are never read there.
    expect(findCredential({ cookie: `berth_token=${TOKEN}` }, '/x', 'path', false)).toBeNull();
    expect(findCredential({ cookie: `__Host-berth_token=${TOKEN}` }, '/x', 'host', true)?.source).toBe('cookie');
    expect(findCredential({}, '/x', 'host', false)).toBeNull();
  });

  it('ignores values that cannot be tokens', () => {
    expect(findCredential({ authorization: 'Bearer short' }, '/', 'path', false)).toBeNull();
    expect(findCredential({ authorization: `Basic ${TOKEN}` }, '/', 'path', false)).toBeNull();
    expect(findCredential({}, '/?token=%00%01', 'path', false)).toBeNull();
  });

  it('removes the token from the query and keeps everything else', () => {
    expect(queryToken('/a?b=2')).toBeNull();
    expect(withoutQueryToken(`/a?b=2&token=${TOKEN}&c=3`)).toBe('/a?b=2&c=3');
    expect(withoutQueryToken(`/a?token=${TOKEN}`)).toBe('/a');
    expect(withoutQueryToken('/a?b=2')).toBe('/a?b=2');
  });

  it('removes only its own cookie', () => {
    expect(cookieHeaderWithout(`a=1; berth_token=${TOKEN}; b=2`, 'berth_token')).toBe('a=1; b=2');
    expect(cookieHeaderWithout(`berth_token=${TOKEN}`, 'berth_token')).toBeNull();
    expect(cookieHeaderWithout(undefined, 'berth_token')).toBeNull();
  });

  it('sets a host-only, HttpOnly, SameSite cookie, Secure with the __Host- prefix under https', () => {
    const plain = sessionCookie(TOKEN, false);
    expect(plain).toBe(`berth_token=${TOKEN}; Path=/; HttpOnly; SameSite=Lax`);
    expect(plain).not.toMatch(/Domain/i);
    expect(sessionCookie(TOKEN, true)).toBe(`__Host-berth_token=${TOKEN}; Path=/; HttpOnly; SameSite=Lax; Secure`);
    expect(cookieName(true)).toBe('__Host-berth_token');
  });

  it('refuses cookie-authenticated WebSockets and unsafe requests from another origin', () => {
    const cookie: Credential = { token: TOKEN, source: 'cookie' };
    const bearer: Credential = { token: TOKEN, source: 'bearer' };
    const own = 'http://a.localhost:3000';
    expect(originAllowed(cookie, { origin: own }, 'GET', true, own)).toBe(true);
    expect(originAllowed(cookie, { origin: 'http://b.localhost:3000' }, 'GET', true, own)).toBe(false);
    expect(originAllowed(cookie, { origin: 'http://b.localhost:3000' }, 'POST', false, own)).toBe(false);
    expect(originAllowed(cookie, { origin: 'http://b.localhost:3000' }, 'GET', false, own)).toBe(true);
    expect(originAllowed(cookie, {}, 'GET', true, own)).toBe(true);
    // A bearer or query token is never attached by the browser on its own.
    expect(originAllowed(bearer, { origin: 'http://evil.example' }, 'POST', true, own)).toBe(true);
  });
});
