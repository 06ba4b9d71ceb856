import { Browser, chromium } from 'playwright-core';
import { Berth, api, eventually, resetDatabase, startBerth, waitForStatus } from './support/berth-harness';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A person's view: open the link in a real Chromium, type into xterm.js, read the screen. */
describe('terminal in a real browser (playwright-core + Debian Chromium)', () => {
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

  it('opens tunnel_url?token=, types a command and sees its output; survives a reload', async () => {
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    const session = await waitForStatus(berth.url, body.id, ['started']);
    const page = await browser.newPage();
    try {
      await page.goto(`${session.tunnel_url}?token=${body.access_token}`);
      // The token is swapped for a cookie and leaves the address bar.
      expect(page.url()).toBe(session.tunnel_url);
      await page.locator('.xterm-screen').waitFor();
      await page.locator('.xterm-helper-textarea').focus();
      const marker = `berth-browser-${Math.floor(Math.random() * 1e9)}`;
      await page.keyboard.type(`echo ${marker} | tr a-z A-Z`);
      await page.keyboard.press('Enter');
      const rows = page.locator('.xterm-rows');
      await eventually(async () => (await rows.innerText()).includes(marker.toUpperCase()), 10_000, 'command output on screen');

      // A reload reconnects to the same shell and replays the screen.
      await page.reload();
      await page.locator('.xterm-screen').waitFor();
      await eventually(async () => (await rows.innerText()).includes(marker.toUpperCase()), 10_000, 'replayed screen');
    } finally {
      await page.close();
    }
  });

  it('shows a stranger no terminal', async () => {
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    const session = await waitForStatus(berth.url, body.id, ['started']);
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      const response = await page.goto(session.tunnel_url);
      expect(response?.status()).toBe(401);
      expect(await page.locator('.xterm-screen').count()).toBe(0);
    } finally {
      await context.close();
    }
  });
});
