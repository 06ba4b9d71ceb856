import { DISCOVERY_PATH, rewriteDiscovery } from './devtools-discovery';

const base = { wsBase: 'ws://127.0.0.1:3000/s/8d2f0c1e-0000-4000-8000-000000000001', query: '' };

describe('DevTools discovery rewriting', () => {
  it('matches the discovery documents only', () => {
    for (const path of ['/json', '/json/', '/json/version', '/json/list', '/json/new?http://x', '/json/version?token=t']) expect(DISCOVERY_PATH.test(path)).toBe(true);
    for (const path of ['/devtools/browser', '/json/protocol', '/jsonx', '/json/close/1', '/']) expect(DISCOVERY_PATH.test(path)).toBe(false);
  });

  it('points /json/version at the gateway, whatever host the agent saw', () => {
    const out = JSON.parse(rewriteDiscovery(Buffer.from(JSON.stringify({ Browser: 'Chrome/156', webSocketDebuggerUrl: 'ws://0.0.0.0:7681/devtools/browser/abc' })), base).toString());
    expect(out).toEqual({ Browser: 'Chrome/156', webSocketDebuggerUrl: `${base.wsBase}/devtools/browser/abc` });
  });

  it('rewrites every target of /json/list, frontend links included, and carries a query token', () => {
    const list = [
      {
        id: 'P1',
        type: 'page',
        webSocketDebuggerUrl: 'ws://localhost/devtools/page/P1',
        devtoolsFrontendUrl: 'https://chrome-devtools-frontend.appspot.com/serve_rev/@x/inspector.html?ws=localhost/devtools/page/P1&x=1',
      },
      { id: 'W', type: 'service_worker' },
    ];
    const out = JSON.parse(rewriteDiscovery(Buffer.from(JSON.stringify(list)), { ...base, query: '?token=T' }).toString());
    expect(out[0].webSocketDebuggerUrl).toBe(`${base.wsBase}/devtools/page/P1?token=T`);
    expect(out[0].devtoolsFrontendUrl).toBe(
      `https://chrome-devtools-frontend.appspot.com/serve_rev/@x/inspector.html?ws=${encodeURIComponent('127.0.0.1:3000/s/8d2f0c1e-0000-4000-8000-000000000001/devtools/page/P1?token=T')}&x=1`,
    );
    expect(out[1]).toEqual({ id: 'W', type: 'service_worker' });
  });

  it('uses wss= for a TLS gateway and leaves non-JSON alone', () => {
    const secure = { wsBase: 'wss://s-1.sessions.example.com', query: '' };
    const out = JSON.parse(rewriteDiscovery(Buffer.from(JSON.stringify({ devtoolsFrontendUrl: '/devtools/inspector.html?ws=h/devtools/page/P' })), secure).toString());
    expect(out.devtoolsFrontendUrl).toBe(`/devtools/inspector.html?wss=${encodeURIComponent('s-1.sessions.example.com/devtools/page/P')}`);
    expect(rewriteDiscovery(Buffer.from('not json'), base).toString()).toBe('not json');
  });
});
