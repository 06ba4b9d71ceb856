import { testConfig } from '../../test/support/test-config';
import { SessionUrls } from './session-urls';

const ID = '550e8400-e29b-41d4-a716-446655440000';

describe('SessionUrls', () => {
  it('derives one origin per session under *.localhost from a loopback PUBLIC_URL', () => {
    const urls = new SessionUrls(testConfig({ PUBLIC_URL: 'http://127.0.0.1:3000' }));
    expect(urls.origin(ID)).toBe(`http://${ID}.localhost:3000`);
    expect(urls.pageUrl(ID)).toBe(`http://${ID}.localhost:3000/`);
    expect(urls.pathUrl(ID)).toBe(`http://127.0.0.1:3000/s/${ID}/`);
    expect(urls.pathUrl(ID, '/ws', 'ws')).toBe(`ws://127.0.0.1:3000/s/${ID}/ws`);
    expect(urls.secure).toBe(false);
  });

  it('uses the public host for other PUBLIC_URLs, and an explicit template as given', () => {
    expect(new SessionUrls(testConfig({ PUBLIC_URL: 'https://berth.example.com' })).origin(ID)).toBe(`https://${ID}.berth.example.com`);
    const urls = new SessionUrls(testConfig({ SESSION_URL_TEMPLATE: 'https://s-{id}.sessions.example.com' }));
    expect(urls.origin(ID)).toBe(`https://s-${ID}.sessions.example.com`);
    expect(urls.secure).toBe(true);
  });

  it('resolves the host form by host name, ignoring the port, case-insensitively', () => {
    const urls = new SessionUrls(testConfig({ PUBLIC_URL: 'http://127.0.0.1:3000' }));
    expect(urls.resolve(`${ID}.localhost:3000`, '/ws?x=1')).toEqual({ sessionId: ID, form: 'host', upstreamPath: '/ws?x=1', prefix: '' });
    expect(urls.resolve(`${ID.toUpperCase()}.LOCALHOST`, '/')?.sessionId).toBe(ID);
    // Not a session host: evil.localhost, a longer name, or a name that only ends in one.
    expect(urls.resolve('evil.localhost:3000', '/')).toBeNull();
    expect(urls.resolve(`x${ID}.localhost:3000`, '/')).toBeNull();
    expect(urls.resolve(`${ID}.localhost.evil.com`, '/')).toBeNull();
    expect(urls.resolve('127.0.0.1:3000', '/api/v1/terminals')).toBeNull();
  });

  it('resolves the path form and strips its prefix', () => {
    const urls = new SessionUrls(testConfig({}));
    expect(urls.resolve('127.0.0.1:3000', `/s/${ID}/devtools/browser?token=t`)).toEqual({
      sessionId: ID,
      form: 'path',
      upstreamPath: '/devtools/browser?token=t',
      prefix: `/s/${ID}`,
    });
    expect(urls.resolve('127.0.0.1:3000', `/s/${ID}`)?.upstreamPath).toBe('/');
    expect(urls.resolve('127.0.0.1:3000', `/s/${ID}?token=t`)?.upstreamPath).toBe('/?token=t');
    expect(urls.resolve('127.0.0.1:3000', `/s/${ID}x/`)).toBeNull();
    expect(urls.resolve('127.0.0.1:3000', '/s/not-a-uuid/')).toBeNull();
  });
});
