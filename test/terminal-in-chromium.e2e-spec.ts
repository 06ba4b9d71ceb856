import { Browser, Page, chromium } from 'playwright-core';
import { Berth, api, eventually, resetDatabase, startBerth, waitForStatus } from './support/berth-harness';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Types a command into xterm.js and waits for its output on screen. */
async function typeAndSee(page: Page, command: string, expected: string): Promise<void> {
  await page.locator('.xterm-screen').waitFor();
  await page.locator('.xterm-helper-textarea').focus();
  await page.keyboard.type(command);
  await page.keyboard.press('Enter');
  const rows = page.locator('.xterm-rows');
  await eventually(async () => (await rows.innerText()).includes(expected), 10_000, `"${expected}" on screen`);
}

/**
 * A person's view, through the gateway: open the session's link in a real
 * Chromium (which resolves *.localhost to loopback, one origin per session),
 * type into xterm.js, read the screen.
 */
describe('terminal in a real browser, through the gateway (playwright-core + Debian Chromium)', () => {
  let berth: Berth;
  let browser: Browser;

  beforeAll(async () => {
    await resetDatabase();
    berth = await startBerth();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await berth?.close();
  });

  async function startedTerminal(): Promise<{ id: string; token: string; url: string }> {
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    const session = await waitForStatus(berth.url, body.id, ['started']);
    return { id: body.id, token: body.access_token, url: session.tunnel_url };
  }

  it('opens tunnel_url?token=, types a command and sees its output; survives a reload', async () => {
    const session = await startedTerminal();
    const page = await browser.newPage();
    try {
      await page.goto(`${session.url}?token=${session.token}`);
      // The token is swapped for a cookie and leaves the address bar.
      expect(page.url()).toBe(session.url);
      const marker = `berth-browser-${Math.floor(Math.random() * 1e9)}`;
      await typeAndSee(page, `echo ${marker} | tr a-z A-Z`, marker.toUpperCase());
      // A reload reconnects to the same shell and replays the screen.
      await page.reload();
      await page.locator('.xterm-screen').waitFor();
      await eventually(async () => (await page.locator('.xterm-rows').innerText()).includes(marker.toUpperCase()), 10_000, 'replayed screen');
    } finally {
      await page.close();
    }
  });

  it('shows a stranger no terminal', async () => {
    const session = await startedTerminal();
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      const response = await page.goto(session.url);
      expect(response?.status()).toBe(401);
      expect(await page.locator('.xterm-screen').count()).toBe(0);
    } finally {
      await context.close();
    }
  });

  it("keeps one session's cookie away from another session's origin", async () => {
    const a = await startedTerminal();
    const b = await startedTerminal();
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${a.url}?token=${a.token}`);
      await page.locator('.xterm-screen').waitFor();
      const cookies = await context.cookies();
      expect(cookies).toEqual([expect.objectContaining({ name: 'berth_token', domain: `${a.id}.localhost`, httpOnly: true, sameSite: 'Lax' })]);
      // Same browser, same cookie jar: B's origin does not get A's cookie, so no terminal.
      const response = await page.goto(b.url);
      expect(response?.status()).toBe(401);
      // A page of session A cannot open session B's WebSocket with A's token either.
      await page.goto(a.url);
      const refused = await page.evaluate(
        (url) =>
          new Promise<string>((resolve) => {
            const socket = new WebSocket(url);
            socket.onopen = () => resolve('open');
            socket.onerror = () => resolve('refused');
          }),
        b.url.replace(/^http/, 'ws') + 'ws',
      );
      expect(refused).toBe('refused');
    } finally {
      await context.close();
    }
  });

  it('closes an open terminal within a second of DELETE, and the token stops working', async () => {
    const session = await startedTerminal();
    const page = await browser.newPage();
    try {
      await page.goto(`${session.url}?token=${session.token}`);
      await typeAndSee(page, 'echo before-delete', 'before-delete');
      const deleted = Date.now();
      expect((await api(berth.url, 'DELETE', `/api/v1/terminals/${session.id}`)).status).toBe(200);
      // The page reports the disconnect (its WebSocket was closed by the gateway).
      await eventually(async () => (await page.locator('.xterm-rows').innerText()).includes('disconnected'), 3000, 'disconnect on screen');
      expect(Date.now() - deleted).toBeLessThan(1500);
      const reopened = await page.goto(session.url);
      expect(reopened?.status()).toBe(401);
    } finally {
      await page.close();
    }
  });
});
