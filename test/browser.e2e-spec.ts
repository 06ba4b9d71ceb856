/// <reference lib="dom" />
import { createHash } from 'node:crypto';
import { Server, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { Browser as PlaywrightBrowser, chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import WebSocket from 'ws';
import { Berth, api, containersOf, eventually, httpRequest, resetDatabase, sql, startBerth, waitForStatus } from './support/berth-harness';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FILE_BYTES = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));

/**
 * A site the sessions' browsers visit, on loopback (allowed by
 * START_URL_ALLOW in this file's Berth): a titled page, a click counter, a
 * download, a file input, and pages that set and read a session cookie and
 * localStorage.
 */
function startSite(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const html = (body: string, headers: Record<string, string> = {}) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...headers });
      res.end(`<!doctype html><html><head><meta charset="utf-8">${body}</html>`);
    };
    if (path === '/') return html('<title>Berth test page</title></head><body><h1>hello</h1></body>');
    if (path === '/clicks') {
      return html(
        `<title>clicks 0</title><style>html,body{margin:0;height:100%;background:#fff}</style></head>` +
          `<body onclick="document.title='clicks ' + (++window.n || (window.n = 1))"></body>`,
      );
    }
    if (path === '/download') return html('<title>download</title></head><body><a id="f" href="/file.bin" download="report.bin">get</a></body>');
    if (path === '/file.bin') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': 'attachment; filename="report.bin"' });
      return res.end(FILE_BYTES);
    }
    if (path === '/upload') {
      return html(
        `<title>upload</title></head><body><input type="file" id="f"><script>` +
          `document.getElementById('f').addEventListener('change', async (e) => {` +
          `const text = await e.target.files[0].text(); document.title = 'got ' + e.target.files[0].name + ' ' + text; });` +
          `</script></body>`,
      );
    }
    if (path === '/set') {
      return html(
        `<title>set</title><script>localStorage.setItem('kept', 'yes-local');</script></head><body>set</body>`,
        // A session cookie (no Expires): Chromium never writes it to disk on its own.
        { 'set-cookie': 'session_kept=yes-cookie; Path=/' },
      );
    }
    if (path === '/read') {
      return html(`<title>read</title><script>document.title = document.cookie + '|' + localStorage.getItem('kept');</script></head><body></body>`);
    }
    if (path === '/redirect-to-loopback') {
      res.writeHead(302, { location: 'http://127.0.0.2:9/secret' });
      return res.end();
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server })));
}

describe('browser sessions: CDP, live view, profiles, files (real Docker, Chromium, playwright-core, puppeteer-core)', () => {
  let berth: Berth;
  let site: { url: string; server: Server };
  let viewer: PlaywrightBrowser;

  beforeAll(async () => {
    await resetDatabase();
    site = await startSite();
    berth = await startBerth({ START_URL_ALLOW: '127.0.0.1', BROWSER_TTL_HOURS: '1' });
    viewer = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await viewer?.close();
    await berth?.close();
    await new Promise((resolve) => site?.server.close(resolve));
  });

  async function launch(body: Record<string, unknown> = {}): Promise<{ id: string; token: string; started: any; created: any }> {
    const created = await api(berth.url, 'POST', '/api/v1/browsers', body);
    expect([200, 202]).toContain(created.status);
    const started = await waitForStatus(berth.url, created.body.id, ['started', 'failed'], 30_000);
    expect(started).toMatchObject({ status: 'started', kind: 'browser' });
    return { id: created.body.id, token: created.body.access_token, started, created: created.body };
  }

  it('drives one browser from playwright-core and puppeteer-core at once, over cdp_url through the gateway', async () => {
    const session = await launch({ start_url: `${site.url}/` });
    // The launch response's cdp_url carries the token; later reads do not.
    expect(session.created.cdp_url).toBeNull();
    expect(session.started.cdp_url).toBe(`${berth.url.replace('http', 'ws')}/s/${session.id}/devtools/browser`);
    const cdpUrl = `${session.started.cdp_url}?token=${session.token}`;

    const playwright = await chromium.connectOverCDP(cdpUrl);
    const pptr = await puppeteer.connect({ browserWSEndpoint: cdpUrl, defaultViewport: null });
    try {
      const page = playwright.contexts()[0].pages().find((candidate) => candidate.url().startsWith(site.url));
      expect(page).toBeDefined();
      expect(await page!.title()).toBe('Berth test page');
      // Puppeteer, connected at the same time, sees the same page, and drives it.
      const pptrPage = (await pptr.pages()).find((candidate) => candidate.url().startsWith(site.url));
      expect(await pptrPage!.title()).toBe('Berth test page');
      await pptrPage!.evaluate(() => {
        document.title = 'changed by puppeteer';
      });
      await eventually(async () => (await page!.title()) === 'changed by puppeteer', 5000, 'playwright to see the change');
    } finally {
      await pptr.disconnect();
    }
    // A client that leaves and comes back finds its pages still open: the session outlives its clients.
    const before = playwright.contexts()[0].pages().length;
    await playwright.close();
    const again = await chromium.connectOverCDP(cdpUrl);
    try {
      expect(again.contexts()[0].pages().length).toBe(before);
      expect(await again.contexts()[0].pages().find((candidate) => candidate.url().startsWith(site.url))!.title()).toBe('changed by puppeteer');
    } finally {
      await again.close();
    }

    // Discovery through the gateway names the gateway, built from configuration, and keeps the caller's query token.
    const version = await httpRequest(`${berth.url}/s/${session.id}/json/version?token=${session.token}`, { host: 'evil.example:9999' });
    expect(version.status).toBe(200);
    const info = JSON.parse(version.body);
    expect(info.Browser).toMatch(/Chrome|Chromium/);
    expect(info.webSocketDebuggerUrl).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:\\d+/s/${session.id}/devtools/browser/[^?]+\\?token=${session.token}$`));
    const list = JSON.parse((await httpRequest(`${berth.url}/s/${session.id}/json/list`, { headers: { authorization: `Bearer ${session.token}` } })).body);
    const listed = list.find((target: { url: string }) => target.url.startsWith(site.url));
    expect(listed.webSocketDebuggerUrl).toBe(`${session.started.cdp_url.replace('/devtools/browser', '')}/devtools/page/${listed.id}`);
    // A client given the HTTP endpoint (browserURL-style) follows /json/version from there: playwright-core's
    // connectOverCDP(http URL) with the token in a header. (puppeteer-core 24, the last for Node 20, drops the
    // path of a browserURL; puppeteer 25 keeps it: docs/BROWSERS.md.)
    const viaHttp = await chromium.connectOverCDP(session.started.path_url.replace(/\/$/, ''), { headers: { authorization: `Bearer ${session.token}` } });
    expect(viaHttp.contexts()[0].pages().length).toBeGreaterThan(0);
    await viaHttp.close();

    // A screenshot of the current page, through the API.
    const shot = await fetch(`${berth.url}/api/v1/browsers/${session.id}/screenshot`, { headers: { authorization: (await adminAuth()).authorization } });
    expect(shot.status).toBe(200);
    expect(shot.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await shot.arrayBuffer()).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

    // Ending the session ends every way in.
    await api(berth.url, 'DELETE', `/api/v1/browsers/${session.id}`);
    await expect(chromium.connectOverCDP(cdpUrl, { timeout: 5000 })).rejects.toThrow(/401/);
  });

  it('refuses missing, wrong and revoked tokens on CDP and the live view; the container refuses anyone without its secret', async () => {
    const session = await launch();
    const cdp = (token?: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(`${session.started.cdp_url}${token ? `?token=${token}` : ''}`);
        socket.once('open', () => {
          socket.close();
          resolve(101);
        });
        socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        socket.once('error', () => resolve(-1));
      });
    expect(await cdp()).toBe(401);
    expect(await cdp('x'.repeat(43))).toBe(401);
    expect(await cdp(session.token)).toBe(101);
    const host = `${session.id}.localhost:${new URL(berth.url).port}`;
    expect((await httpRequest(`${berth.url}/`, { host })).status).toBe(401);

    // The container's own port: every path, HTTP and WebSocket, needs the upstream secret (the user's token is not it).
    const [{ host_port: port }] = await sql<{ host_port: number }>('SELECT host_port FROM sessions WHERE id = $1', [session.id]);
    for (const path of ['/', '/json/version', '/json/list', '/.berth/health', '/.berth/downloads', '/live/viewer.js']) {
      expect((await httpRequest(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${session.token}` } })).status).toBe(401);
    }
    for (const path of ['/devtools/browser', '/vnc']) {
      const status = await new Promise<number>((resolve) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`);
        socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        socket.once('open', () => resolve(101));
        socket.once('error', () => resolve(-1));
      });
      expect(status).toBe(401);
    }

    // Downloads need the API key of the session's tenant.
    expect((await api(berth.url, 'GET', `/api/v1/browsers/${session.id}/downloads`, undefined, { authorization: '' })).status).toBe(401);

    await api(berth.url, 'DELETE', `/api/v1/browsers/${session.id}`);
    expect(await cdp(session.token)).toBe(401);
    expect((await httpRequest(`${berth.url}/?token=${session.token}`, { host })).status).toBe(401);
  });

  it('shows the live screen in noVNC on the session origin; view-only refuses input in the session', async () => {
    for (const viewOnly of [false, true]) {
      const session = await launch({ start_url: `${site.url}/clicks`, view_only: viewOnly });
      expect(session.started.live_view_url).toBe(`http://${session.id}.localhost:${new URL(berth.url).port}/`);
      const context = await viewer.newContext({ viewport: { width: 1000, height: 600 } });
      const page = await context.newPage();
      try {
        await page.goto(`${session.created.live_view_url ?? session.started.live_view_url}?token=${session.token}`);
        expect(page.url()).toBe(session.started.live_view_url);
        const canvas = page.locator('canvas');
        await canvas.waitFor({ timeout: 15_000 });
        // The screen is drawn: the white page and the browser's chrome, not a blank canvas.
        await eventually(
          async () =>
            page.evaluate(() => {
              const c = document.querySelector('canvas') as HTMLCanvasElement;
              const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
              let colours = 0;
              for (let i = 0; i < data.length; i += 4 * 97) if (data[i] !== data[0] || data[i + 1] !== data[1]) colours++;
              return colours > 10 && c.width > 300;
            }),
          15_000,
          'a drawn screen',
        );
        const box = (await canvas.boundingBox())!;
        await page.mouse.click(box.x + box.width / 2, box.y + box.height * 0.7);
        await page.mouse.click(box.x + box.width / 2, box.y + box.height * 0.75);
        const pw = await chromium.connectOverCDP(`${session.started.cdp_url}?token=${session.token}`);
        try {
          const remote = pw.contexts()[0].pages().find((candidate) => candidate.url().startsWith(`${site.url}/clicks`))!;
          if (viewOnly) {
            await new Promise((resolve) => setTimeout(resolve, 1500));
            expect(await remote.title()).toBe('clicks 0');
          } else {
            await eventually(async () => /^clicks [12]$/.test(await remote.title()), 5000, 'the click to reach the session');
          }
        } finally {
          await pw.close();
        }
      } finally {
        await context.close();
        await api(berth.url, 'DELETE', `/api/v1/browsers/${session.id}`);
      }
    }
  });

  it('keeps cookies (session cookies too) and localStorage in a profile; one live session per profile', async () => {
    const first = await launch({ profile: 'alice', start_url: `${site.url}/set` });
    const pw = await chromium.connectOverCDP(`${first.started.cdp_url}?token=${first.token}`);
    const page = pw.contexts()[0].pages().find((candidate) => candidate.url().startsWith(`${site.url}/set`))!;
    await eventually(async () => (await page.evaluate(() => localStorage.getItem('kept'))) === 'yes-local', 5000, 'localStorage set');
    await pw.close();

    // A second launch with the profile is handed the live session (200, same id, a new token).
    const second = await api(berth.url, 'POST', '/api/v1/browsers', { profile: 'alice' });
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.id);
    expect(second.body.access_token).not.toBe(first.token);

    // End it (Chromium closes cleanly and saves the session cookie), then start the profile again.
    await api(berth.url, 'DELETE', `/api/v1/browsers/${first.id}`);
    expect((await api(berth.url, 'GET', `/api/v1/sessions/${first.id}?wait_seconds=20`)).body.status).toBe('stopped');
    const next = await launch({ profile: 'alice', start_url: `${site.url}/read` });
    expect(next.id).not.toBe(first.id);
    const reader = await chromium.connectOverCDP(`${next.started.cdp_url}?token=${next.token}`);
    try {
      const read = reader.contexts()[0].pages().find((candidate) => candidate.url().startsWith(`${site.url}/read`))!;
      await eventually(async () => (await read.title()) === 'session_kept=yes-cookie|yes-local', 10_000, 'the profile to be back');
    } finally {
      await reader.close();
    }
    // The profile is listed, and cannot be deleted while in use.
    const profiles = await api(berth.url, 'GET', '/api/v1/profiles');
    const alice = profiles.body.find((profile: { name: string }) => profile.name === 'alice');
    expect(alice).toMatchObject({ session_id: next.id });
    expect((await api(berth.url, 'DELETE', `/api/v1/profiles/${alice.id}`)).status).toBe(409);
    await api(berth.url, 'DELETE', `/api/v1/browsers/${next.id}`);
    await waitForStatus(berth.url, next.id, ['stopped']);
    expect((await api(berth.url, 'DELETE', `/api/v1/profiles/${alice.id}`)).status).toBe(204);
    expect((await api(berth.url, 'GET', '/api/v1/profiles')).body.find((profile: { name: string }) => profile.name === 'alice')).toBeUndefined();
  });

  it('lists and serves downloads (also started over CDP), takes uploads into a file input, refuses traversal', async () => {
    const session = await launch({ start_url: `${site.url}/download` });
    const pw = await chromium.connectOverCDP(`${session.started.cdp_url}?token=${session.token}`);
    try {
      const page = pw.contexts()[0].pages().find((candidate) => candidate.url().startsWith(`${site.url}/download`))!;
      await page.click('#f');
      const listed = await eventually(async () => {
        const files = await api(berth.url, 'GET', `/api/v1/browsers/${session.id}/downloads`);
        return files.body.find?.((file: { name: string; size: number }) => file.name === 'report.bin' && file.size === FILE_BYTES.length);
      }, 15_000, 'the download to be listed');
      expect(listed).toBeDefined();
      const fetched = await fetch(`${berth.url}/api/v1/browsers/${session.id}/downloads/report.bin`, { headers: await adminAuth() });
      expect(fetched.status).toBe(200);
      const bytes = Buffer.from(await fetched.arrayBuffer());
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(createHash('sha256').update(FILE_BYTES).digest('hex'));
      for (const name of ['..%2F..%2Fetc%2Fpasswd', '.hidden', '%2Fetc%2Fpasswd']) {
        expect([400, 404]).toContain((await api(berth.url, 'GET', `/api/v1/browsers/${session.id}/downloads/${name}`)).status);
      }

      // Upload (multipart), then hand the in-container path to a file input over CDP.
      const form = new FormData();
      form.append('file', new Blob(['uploaded content']), 'notes.txt');
      const uploaded = await fetch(`${berth.url}/api/v1/browsers/${session.id}/uploads`, { method: 'POST', body: form, headers: await adminAuth() });
      expect(uploaded.status).toBe(201);
      const { path } = (await uploaded.json()) as { path: string };
      expect(path).toMatch(/notes\.txt$/);
      await page.goto(`${site.url}/upload`);
      const client = await page.context().newCDPSession(page);
      const { root } = await client.send('DOM.getDocument');
      const { nodeId } = await client.send('DOM.querySelector', { nodeId: root.nodeId, selector: '#f' });
      await client.send('DOM.setFileInputFiles', { nodeId, files: [path] });
      await eventually(async () => (await page.title()) === 'got notes.txt uploaded content', 5000, 'the page to read the file');
      // Raw upload with a traversal name: refused.
      const bad = await api(berth.url, 'POST', `/api/v1/browsers/${session.id}/uploads?name=..%2Fescape`, 'x', { 'content-type': 'application/octet-stream' });
      expect(bad.status).toBe(400);
    } finally {
      await pw.close();
      await api(berth.url, 'DELETE', `/api/v1/browsers/${session.id}`);
    }
  });

  it('refuses start URLs that lead into the deployment, redirects included', async () => {
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'file:///etc/passwd', 'http://10.0.0.1/', 'http://[::1]/']) {
      const refused = await api(berth.url, 'POST', '/api/v1/browsers', { start_url: url });
      expect(refused.status).toBe(400);
      expect(JSON.stringify(refused.body.message)).toMatch(/start_url/);
    }
    // Allowed host, but it redirects to a loopback address that is not: the agent stops the navigation.
    const session = await launch({ start_url: `${site.url}/redirect-to-loopback` });
    const pw = await chromium.connectOverCDP(`${session.started.cdp_url}?token=${session.token}`);
    try {
      const urls = pw.contexts()[0].pages().map((page) => page.url());
      expect(urls.some((url) => url.includes('127.0.0.2'))).toBe(false);
    } finally {
      await pw.close();
      await api(berth.url, 'DELETE', `/api/v1/browsers/${session.id}`);
    }
  });

  it('is one lifecycle: browsers and terminals list together, and DELETE leaves no container', async () => {
    const browser = await launch({ headless: true });
    expect(browser.started.live_view_url).toBeNull();
    const terminal = await api(berth.url, 'POST', '/api/v1/terminals');
    const all = await api(berth.url, 'GET', '/api/v1/sessions?status=started&limit=200');
    expect(all.body.items.map((item: { kind: string }) => item.kind)).toContain('browser');
    expect((await api(berth.url, 'GET', '/api/v1/sessions?kind=browser')).body.items.every((item: { kind: string }) => item.kind === 'browser')).toBe(true);
    // A browser is not a terminal: the kind routes keep to their kind.
    expect((await api(berth.url, 'GET', `/api/v1/terminals/${browser.id}`)).status).toBe(404);
    await api(berth.url, 'DELETE', `/api/v1/sessions/${browser.id}`);
    await api(berth.url, 'DELETE', `/api/v1/sessions/${terminal.body.id}`);
    await waitForStatus(berth.url, browser.id, ['stopped']);
    expect(await containersOf(berth.instance, browser.id)).toHaveLength(0);
  });
});

async function adminAuth(): Promise<{ authorization: string }> {
  const { TEST_ADMIN_KEY } = await import('./support/test-config');
  return { authorization: `Bearer ${TEST_ADMIN_KEY}` };
}
