#!/usr/bin/env node
// Helper for smoke-test.sh: runs on the host (Node 20 with the repository's `ws` and
// `playwright-core`; `puppeteer-core` is used when installed), talks only to 127.0.0.1.
//
//   smoke-helper.js receiver STATUS PORTFILE        callback stand-in: one JSON line per request
//   smoke-helper.js site PORTFILE                   test web site: one JSON line per request
//   smoke-helper.js freeport                        print a free TCP port on 127.0.0.1
//   smoke-helper.js wait PORT SECRET                wait until /.berth/health says ready
//   smoke-helper.js auth PORT SECRET                401 on every path without the secret
//   smoke-helper.js cdp PORT SECRET SITE            discovery, Playwright, a second client, reconnect
//   smoke-helper.js files PORT SECRET SITE          screenshot, download, upload
//   smoke-helper.js vnc PORT SECRET SITE MODE       RFB over /vnc; MODE=interactive|view-only
//   smoke-helper.js live PORT SECRET SITE MODE      the live view page in the host's Chromium
//   smoke-helper.js bind PORT SECRET BODY-JSON      POST /.berth/bind, print the status
//   smoke-helper.js persist-set PORT SECRET SITE    set a session cookie and localStorage
//   smoke-helper.js persist-check PORT SECRET SITE  both must be back
//   smoke-helper.js page-url PORT SECRET            print the first tab's URL and title
// Check lines are "ok   name" / "FAIL name (detail)"; the exit code is 1 if any failed.
'use strict';
const http = require('node:http');
const net = require('node:net');
const fs = require('node:fs');
const WebSocket = require('ws');

const HOST = '127.0.0.1';
let failed = 0;
function check(name, ok, detail) {
  console.log((ok ? 'ok   ' : 'FAIL ') + name + (!ok && detail !== undefined ? `  (${detail})` : ''));
  if (!ok) failed++;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// expectContinue: send the body only after "100 Continue", as a polite client of a server
// that refuses large bodies does (the agent answers 413 from Content-Length alone).
function request(port, method, path, secret, { body, headers = {}, timeout = 15000, expectContinue = false } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (secret !== undefined) h['X-Berth-Secret'] = secret;
    if (expectContinue) Object.assign(h, { Expect: '100-continue', 'Content-Length': body.length });
    const req = http.request({ host: HOST, port, method, path, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (expectContinue) req.destroy(); // the body was never sent: drop the connection
        resolve({ status: res.statusCode, headers: res.headers, raw: Buffer.concat(chunks),
          get body() { return this.raw.toString(); } });
      });
    });
    req.on('error', reject);
    req.setTimeout(timeout, () => req.destroy(new Error('timeout')));
    if (expectContinue) req.on('continue', () => req.end(body));
    else req.end(body);
  });
}
const json = async (...a) => { const r = await request(...a); return { ...r, data: JSON.parse(r.body) }; };

// A raw CDP client over one WebSocket: send() resolves with the answer; events are kept.
function cdpClient(url, secret) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: secret === undefined ? {} : { 'X-Berth-Secret': secret } });
    let id = 0;
    const pending = new Map();
    const c = { ws, events: [] };
    c.send = (method, params = {}, sessionId) => new Promise((res, rej) => {
      const msg = { id: ++id, method, params };
      if (sessionId) msg.sessionId = sessionId;
      pending.set(msg.id, { res, rej });
      ws.send(JSON.stringify(msg));
    });
    ws.on('message', (data) => {
      const m = JSON.parse(data);
      if (m.id && pending.has(m.id)) {
        const p = pending.get(m.id);
        pending.delete(m.id);
        return m.error ? p.rej(new Error(m.error.message)) : p.res(m.result);
      }
      c.events.push(m);
    });
    ws.on('unexpected-response', (req, res) => { res.resume(); req.destroy(); reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })); });
    ws.on('open', () => resolve(c));
    ws.on('error', reject);
    c.close = () => new Promise((res) => { ws.once('close', res); ws.close(); });
  });
}

async function upgradeStatus(port, path, secret) {
  try {
    const c = await cdpClient(`ws://${HOST}:${port}${path}`, secret);
    c.ws.terminate();
    return 101;
  } catch (err) {
    return err.status || err.message;
  }
}

// --- stand-ins ---------------------------------------------------------------------------

function logServer(portFile, handler) {
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      let parsed = body;
      try { parsed = JSON.parse(body); } catch { /* not JSON */ }
      console.log(JSON.stringify({ t: Date.now(), method: req.method, url: req.url, host: req.headers.host,
        auth: req.headers.authorization, type: req.headers['content-type'], body: parsed }));
      handler(req, res);
    });
  });
  srv.listen(0, HOST, () => fs.writeFileSync(portFile, String(srv.address().port)));
}

function receiver(status, portFile) {
  logServer(portFile, (req, res) => { res.writeHead(Number(status)); res.end(); });
}

const DOWNLOAD_NAME = 'report ü.txt';
const DOWNLOAD_BODY = 'quarterly numbers\n'.repeat(1000);
const PAGES = {
  '/': '<title>Berth smoke</title><h1>hello</h1><input id="f" type="file">'
    + '<a id="dl" href="/download">download</a>'
    + '<script>window.clicks=0;document.addEventListener("mousedown",()=>window.clicks++)</script>'
    + '<style>body{margin:0;height:100vh}</style>',
  '/start': '<title>Start page</title>started',
  '/landing': '<title>Landing</title>',
  '/secret': '<title>SECRET</title>internal',
  '/persist': '<title>persist</title><script>localStorage.setItem("berth","kept");'
    + 'document.cookie="sess=abc123; path=/"</script>',
};
function site(portFile) {
  logServer(portFile, (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/download') {
      res.writeHead(200, { 'Content-Type': 'text/plain',
        'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(DOWNLOAD_NAME)}` });
      return res.end(DOWNLOAD_BODY);
    }
    if (url.pathname === '/redirect') {
      res.writeHead(302, { Location: url.searchParams.get('to') });
      return res.end();
    }
    const page = PAGES[url.pathname];
    res.writeHead(page ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(page || 'not found');
  });
}

async function freeport() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, HOST, r));
  console.log(srv.address().port);
  srv.close();
}

async function wait(port, secret) {
  for (let i = 0; i < 300; i++) {
    try {
      const r = await json(port, 'GET', '/.berth/health', secret, { timeout: 1000 });
      if (r.data.ready) return;
    } catch { /* not listening yet */ }
    await sleep(50);
  }
  process.exitCode = 1;
}

// --- checks --------------------------------------------------------------------------------

async function auth(port, secret) {
  const paths = ['/json/version', '/json/list', '/json', '/json/new?about:blank', '/.berth/health', '/.berth/screenshot',
    '/.berth/downloads', '/.berth/downloads/x.txt', '/nonexistent', '/'];
  for (const [label, s] of [['no secret', undefined], ['wrong secret', secret + 'x']]) {
    const statuses = [];
    for (const p of paths) statuses.push((await request(port, 'GET', p, s)).status);
    statuses.push((await request(port, 'PUT', '/.berth/uploads/a.txt', s, { body: 'x' })).status);
    statuses.push((await request(port, 'POST', '/.berth/bind', s, { body: '{}' })).status);
    for (const p of ['/devtools/browser/x', '/devtools/page/x', '/vnc']) statuses.push(await upgradeStatus(port, p, s));
    check(`401 on every path and upgrade with ${label}`, statuses.every((x) => x === 401), statuses.join(','));
  }
  const r = await request(port, 'GET', '/json/version');
  check('401 body is {"error":"unauthorized"}', r.body.trim() === '{"error":"unauthorized"}', r.body);
}

async function cdp(port, secret, sitePort) {
  const pageURL = `http://${HOST}:${sitePort}/`;
  const v = await json(port, 'GET', '/json/version', secret, { headers: { Host: 'gw.example:8443' } });
  const keys = ['Browser', 'Protocol-Version', 'User-Agent', 'V8-Version', 'WebKit-Version', 'webSocketDebuggerUrl'];
  check('/json/version has Chromium\'s fields', v.status === 200 && keys.every((k) => typeof v.data[k] === 'string' && v.data[k]),
    JSON.stringify(v.data));
  check('/json/version builds the WebSocket URL from the Host header',
    /^ws:\/\/gw\.example:8443\/devtools\/browser\/[\w-]+$/.test(v.data.webSocketDebuggerUrl), v.data.webSocketDebuggerUrl);

  const { chromium } = require('playwright-core');
  const headers = { 'X-Berth-Secret': secret };
  const pw = await chromium.connectOverCDP(`http://${HOST}:${port}`, { headers });
  const ctx = pw.contexts()[0];
  const page = ctx.pages()[0] || await ctx.newPage();
  await page.goto(pageURL);
  check('playwright-core connectOverCDP reads the title of a page', await page.title() === 'Berth smoke');

  const list = await json(port, 'GET', '/json/list', secret);
  const entry = list.data.find((t) => t.type === 'page' && t.url === pageURL);
  check('/json/list lists the page with its endpoints', !!entry && entry.title === 'Berth smoke'
    && entry.webSocketDebuggerUrl === `ws://${HOST}:${port}/devtools/page/${entry.id}`
    && entry.devtoolsFrontendUrl.includes(`ws=${HOST}:${port}/devtools/page/${entry.id}`), JSON.stringify(list.data));

  // A second client at the same time, on the browser endpoint and on the page's own endpoint.
  const raw = await cdpClient(v.data.webSocketDebuggerUrl.replace('gw.example:8443', `${HOST}:${port}`), secret);
  const { targetInfos } = await raw.send('Target.getTargets');
  check('a second (raw CDP) client sees the same page', targetInfos.some((t) => t.url === pageURL && t.title === 'Berth smoke'));
  const pageWS = await cdpClient(entry.webSocketDebuggerUrl, secret);
  const ev = await pageWS.send('Runtime.evaluate', { expression: 'document.title', returnByValue: true });
  check('/devtools/page/<id> drives the page', ev.result.value === 'Berth smoke', JSON.stringify(ev));
  await pageWS.close();
  check('unknown page id is a 404', await upgradeStatus(port, '/devtools/page/NOPE', secret) === 404);

  let puppeteer = null;
  try { puppeteer = require('puppeteer-core'); } catch { /* optional */ }
  if (puppeteer) {
    const pp = await puppeteer.connect({ browserWSEndpoint: `ws://${HOST}:${port}/devtools/browser/any`, headers });
    const titles = await Promise.all((await pp.pages()).map((p) => p.title()));
    check('puppeteer-core connects at the same time and sees the page', titles.includes('Berth smoke'), titles.join(','));
    await pp.close(); // sends Browser.close: must end this client only
    check('puppeteer browser.close() leaves the browser running for Playwright', await page.title() === 'Berth smoke');
  } else {
    console.log('skip puppeteer-core checks (not installed)');
  }
  const created = await json(port, 'PUT', `/json/new?${pageURL}landing`, secret);
  check('PUT /json/new opens a tab', created.status === 200 && created.data.type === 'page' && !!created.data.webSocketDebuggerUrl,
    created.body);
  const closed = await request(port, 'GET', `/json/close/${created.data.id}`, secret);
  check('/json/close closes it', closed.status === 200, closed.body);

  await pw.close(); // connectOverCDP: disconnects only
  const { targetInfos: after } = await raw.send('Target.getTargets');
  check('a client leaving does not close the browser or its pages', after.some((t) => t.url === pageURL));
  await raw.close();
  const pw2 = await chromium.connectOverCDP(`http://${HOST}:${port}`, { headers });
  const titles = await Promise.all(pw2.contexts()[0].pages().map((p) => p.title()));
  check('reconnecting finds the pages still open', titles.includes('Berth smoke'), titles.join(','));
  await pw2.close();
}

async function files(port, secret, sitePort) {
  const shot = await request(port, 'GET', '/.berth/screenshot', secret);
  check('screenshot is a PNG', shot.status === 200 && shot.headers['content-type'] === 'image/png'
    && shot.raw.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), `${shot.status} ${shot.raw.length} bytes`);

  const { chromium } = require('playwright-core');
  const pw = await chromium.connectOverCDP(`http://${HOST}:${port}`, { headers: { 'X-Berth-Secret': secret } });
  const page = pw.contexts()[0].pages().find((p) => p.url().startsWith(`http://${HOST}:${sitePort}/`)) || pw.contexts()[0].pages()[0];
  await page.goto(`http://${HOST}:${sitePort}/`);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 10000 }), page.click('#dl')]);
  check('Playwright sees the download event through the multiplexer', download.suggestedFilename() === DOWNLOAD_NAME,
    download.suggestedFilename());
  let entry;
  for (let i = 0; i < 50 && !entry; i++) {
    entry = (await json(port, 'GET', '/.berth/downloads', secret)).data.find((d) => d.name === DOWNLOAD_NAME);
    if (!entry) await sleep(100);
  }
  check('download listed under its real name with its size', !!entry && entry.size === Buffer.byteLength(DOWNLOAD_BODY)
    && !Number.isNaN(Date.parse(entry.modified)), JSON.stringify(entry));
  const got = await request(port, 'GET', `/.berth/downloads/${encodeURIComponent(DOWNLOAD_NAME)}`, secret);
  check('download fetched with its bytes and headers', got.status === 200 && got.body === DOWNLOAD_BODY
    && got.headers['content-type'].startsWith('text/plain') && got.headers['content-disposition'].startsWith('attachment;')
    && got.headers['content-disposition'].includes("filename*=UTF-8''report%20%C3%BC.txt"), `${got.status} ${got.headers['content-disposition']}`);
  const listing = (await json(port, 'GET', '/.berth/downloads', secret)).data;
  check('no GUID-named or partial file listed', listing.every((d) => !/^[0-9a-f-]{36}$/.test(d.name) && !d.name.endsWith('.crdownload')),
    JSON.stringify(listing));

  for (const [label, method, path] of [['slash', 'PUT', '/.berth/uploads/a%2Fb'], ['leading dot', 'PUT', '/.berth/uploads/.bashrc'],
    ['control character', 'PUT', '/.berth/uploads/a%0Ab'], ['slash', 'GET', '/.berth/downloads/sub%2Fx.txt'],
    ['NUL', 'GET', '/.berth/downloads/a%00b']]) {
    const r = await request(port, method, path, secret, { body: method === 'PUT' ? 'x' : undefined });
    check(`bad name refused with 400 (${method} ${label})`, r.status === 400, `${r.status} ${r.body}`);
  }
  // Paths with ".." reach the kind as sent (the agent does not clean or redirect them) and
  // the name is refused.
  for (const [method, path] of [['PUT', '/.berth/uploads/..%2F..%2Fhome%2Fberth%2Fevil'], ['GET', '/.berth/downloads/..%2F..%2Fetc%2Fpasswd'],
    ['PUT', '/.berth/uploads/../evil'], ['GET', '/.berth/downloads/../../etc/passwd'], ['GET', '/.berth/downloads/..']]) {
    const r = await request(port, method, path, secret, { body: method === 'PUT' ? 'x' : undefined });
    check(`"..": ${method} ${path} refused with 400`, r.status === 400, `${r.status} ${r.headers.location || ''}`);
  }
  const big = await request(port, 'PUT', '/.berth/uploads/big.bin', secret, { body: Buffer.alloc(2 << 20), expectContinue: true });
  check('upload over the cap is 413', big.status === 413, `${big.status} ${big.body}`);

  const content = 'uploaded through Berth\n';
  const up = await json(port, 'PUT', '/.berth/uploads/hello.txt', secret, { body: content });
  check('upload answers the in-container path', [200, 201].includes(up.status) && up.data.path === '/home/berth/uploads/hello.txt',
    up.body);
  const cdpSession = await page.context().newCDPSession(page);
  const { root } = await cdpSession.send('DOM.getDocument');
  const { nodeId } = await cdpSession.send('DOM.querySelector', { nodeId: root.nodeId, selector: '#f' });
  await cdpSession.send('DOM.setFileInputFiles', { nodeId, files: [up.data.path] });
  const seen = await page.evaluate(() => document.getElementById('f').files[0].text().then((t) => [document.getElementById('f').files[0].name, t]));
  check('DOM.setFileInputFiles puts the uploaded file in the page\'s input', seen[0] === 'hello.txt' && seen[1] === content,
    JSON.stringify(seen));
  await pw.close();
}

// RFB over /vnc: handshake, then a click in the page; the page counts mousedowns.
async function vnc(port, secret, sitePort, mode) {
  const frames = [];
  let wake = () => {};
  const ws = new WebSocket(`ws://${HOST}:${port}/vnc`, 'binary', { headers: { 'X-Berth-Secret': secret } });
  ws.binaryType = 'nodebuffer';
  ws.on('message', (d) => { frames.push(d); wake(); });
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  check('/vnc accepts the "binary" subprotocol', ws.protocol === 'binary', ws.protocol);
  let buf = Buffer.alloc(0);
  const read = async (n) => {
    const deadline = Date.now() + 5000;
    while (buf.length < n) {
      if (frames.length) { buf = Buffer.concat([buf, ...frames.splice(0)]); continue; }
      if (Date.now() > deadline) throw new Error('vnc read timeout');
      await new Promise((r) => { wake = r; setTimeout(r, 100); });
    }
    const out = buf.subarray(0, n); buf = buf.subarray(n); return out;
  };
  const banner = (await read(12)).toString();
  check('/vnc speaks RFB', /^RFB 003\.00\d\n$/.test(banner), JSON.stringify(banner));
  ws.send(Buffer.from('RFB 003.008\n'));
  const types = await read((await read(1))[0]);
  ws.send(Buffer.from([1]));
  const result = (await read(4)).readUInt32BE(0);
  ws.send(Buffer.from([1])); // shared
  const init = await read(24);
  await read(init.readUInt32BE(20));
  const width = init.readUInt16BE(0), height = init.readUInt16BE(2);
  check('RFB handshake completes (security None, ServerInit)', types.includes(1) && result === 0 && width > 0, `${width}x${height}`);

  const { chromium } = require('playwright-core');
  const pw = await chromium.connectOverCDP(`http://${HOST}:${port}`, { headers: { 'X-Berth-Secret': secret } });
  const page = pw.contexts()[0].pages()[0];
  await page.goto(`http://${HOST}:${sitePort}/`);
  await page.bringToFront();
  const x = Math.floor(width / 2), y = Math.floor(height * 0.6);
  const ptr = (mask) => Buffer.from([5, mask, x >> 8, x & 255, y >> 8, y & 255]);
  ws.send(Buffer.concat([ptr(0), ptr(1), ptr(0)]));
  ws.send(Buffer.from([4, 1, 0, 0, 0, 0, 0, 0x61, 4, 0, 0, 0, 0, 0, 0, 0x61])); // 'a' down, up
  ws.send(Buffer.from([3, 0, 0, 0, 0, 0, width >> 8, width & 255, height >> 8, height & 255])); // update request
  let clicks = 0;
  for (let i = 0; i < 20; i++) {
    clicks = await page.evaluate(() => window.clicks);
    if (clicks > 0) break;
    await sleep(100);
  }
  if (mode === 'view-only') {
    check('view-only: a click over /vnc does not reach the page', clicks === 0, `clicks=${clicks}`);
    check('view-only: the viewer stays connected (input dropped, not refused)', ws.readyState === WebSocket.OPEN);
  } else {
    check('interactive: a click over /vnc reaches the page', clicks > 0, `clicks=${clicks}`);
  }
  ws.close();
  await pw.close();
}

// --- live view ------------------------------------------------------------------------------

// A stand-in for Berth's gateway: listens on 127.0.0.1, adds X-Berth-Secret to every request
// and WebSocket upgrade and forwards them to the agent. gw.refuse() makes it answer 401 to
// everything, as the gateway does once a session has ended; gw.drop() cuts every open
// WebSocket, as a network blip would.
function gatewayStandIn(agentPort, secret) {
  const sockets = new Set();
  const gw = { refusing: false, upgrades: 0 };
  const refuse = (socketOrRes) => {
    const body = '{"statusCode":401,"error":"Unauthorized"}';
    if (socketOrRes.writeHead) {
      socketOrRes.writeHead(401, { 'Content-Type': 'application/json' });
      return socketOrRes.end(body);
    }
    socketOrRes.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  };
  const srv = http.createServer((req, res) => {
    if (gw.refusing) return refuse(res);
    const up = http.request({ host: HOST, port: agentPort, method: req.method, path: req.url, agent: false,
      headers: { ...req.headers, 'x-berth-secret': secret } }, (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  srv.on('upgrade', (req, client, head) => {
    gw.upgrades++;
    if (gw.refusing) return refuse(client);
    const upstream = net.connect(agentPort, HOST, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        if (req.rawHeaders[i].toLowerCase() !== 'x-berth-secret') lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      }
      lines.push(`X-Berth-Secret: ${secret}`);
      upstream.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const close = () => { client.destroy(); upstream.destroy(); sockets.delete(client); };
    sockets.add(client);
    for (const s of [client, upstream]) { s.on('error', close); s.on('close', close); }
  });
  gw.listen = () => new Promise((r) => srv.listen(0, HOST, () => r(srv.address().port)));
  gw.drop = () => { for (const s of sockets) s.destroy(); };
  gw.refuse = () => { gw.refusing = true; gw.drop(); };
  gw.close = () => { gw.drop(); srv.close(); };
  return gw;
}

// The live view page through the stand-in gateway, in a real Chromium (the host's, driven by
// playwright-core): the page and noVNC load under the CSP, the canvas shows the session's
// screen, input obeys MODE, a second viewer can watch at the same time, a dropped connection
// is re-established, and once the gateway says 401 the page stops trying.
async function live(port, secret, sitePort, mode) {
  // Plain HTTP first: the routes behind the secret.
  const page0 = await request(port, 'GET', '/', secret);
  const csp = page0.headers['content-security-policy'] || '';
  check('live view page: 200 HTML, no-store, no-referrer, strict CSP', page0.status === 200
    && page0.headers['content-type'] === 'text/html; charset=utf-8' && page0.headers['cache-control'] === 'no-store'
    && page0.headers['referrer-policy'] === 'no-referrer' && csp.includes("default-src 'self'") && csp.includes("connect-src 'self'")
    && !csp.includes('unsafe'), `${page0.status} ${JSON.stringify(page0.headers)}`);
  const statuses = [];
  for (const p of ['/live/viewer.js', '/live/viewer.css', '/live/novnc/core/rfb.js', '/live/novnc/vendor/pako/lib/zlib/inflate.js']) {
    const r = await request(port, 'GET', p, secret);
    const want = p.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8';
    statuses.push(`${p}=${r.status}`);
    check(`live view asset ${p}: 200 ${want}`, r.status === 200 && r.headers['content-type'] === want
      && r.raw.length > 0, `${r.status} ${r.headers['content-type']}`);
  }
  const cfg = await json(port, 'GET', '/live/config.json', secret);
  check(`live view config says view_only=${mode === 'view-only'}`, cfg.status === 200 && cfg.data.view_only === (mode === 'view-only'), cfg.body);
  const refused = [];
  for (const p of ['/', '/live/viewer.js', '/live/novnc/core/rfb.js', '/live/config.json']) refused.push((await request(port, 'GET', p)).status);
  check('live view page, assets and config: 401 without the secret', refused.every((x) => x === 401), refused.join(','));
  const licence = await request(port, 'GET', '/live/novnc/LICENSE.txt', secret);
  check('only .js/.css under /live/ are served (LICENSE.txt: 404)', licence.status === 404, licence.status);

  // The remote page counts mousedowns: the first tab shows it.
  const { chromium } = require('playwright-core');
  const remote = await chromium.connectOverCDP(`http://${HOST}:${port}`, { headers: { 'X-Berth-Secret': secret } });
  const remotePage = remote.contexts()[0].pages()[0];
  await remotePage.goto(`http://${HOST}:${sitePort}/`);
  await remotePage.bringToFront();

  const gw = gatewayStandIn(port, secret);
  const gwPort = await gw.listen();
  const origin = `http://live-smoke.localhost:${gwPort}`; // *.localhost: loopback, a secure context
  const browser = await chromium.launch({ executablePath: process.env.BERTH_SMOKE_CHROMIUM || '/usr/lib/chromium/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
  try {
    const ctx = await browser.newContext({ viewport: { width: 960, height: 540 } });
    const problems = [];
    const watch = (page) => {
      page.on('console', (m) => { if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text())) problems.push(m.text()); });
      page.on('pageerror', (e) => problems.push(String(e)));
    };
    const viewer = await ctx.newPage();
    watch(viewer);
    await viewer.goto(`${origin}/`);
    const connected = (p, ms = 10000) => p.waitForSelector('body[data-state="connected"]', { timeout: ms }).then(() => true, () => false);
    check('live view connects in a real Chromium (through a gateway stand-in)', await connected(viewer),
      await viewer.evaluate(() => `${document.body.dataset.state}: ${document.getElementById('state').textContent}`));
    // Drawn: the canvas has the remote screen's size and more than a handful of colours.
    let drawn = { w: 0, h: 0, colours: 0 };
    for (let i = 0; i < 30 && drawn.colours < 8; i++) {
      drawn = await viewer.evaluate(() => {
        const c = document.querySelector('#screen canvas');
        if (!c || !c.width) return { w: 0, h: 0, colours: 0 };
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length && seen.size < 64; i += 4 * 97) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return { w: c.width, h: c.height, colours: seen.size };
      });
      if (drawn.colours < 8) await sleep(100);
    }
    check('the viewer draws the session\'s screen (canvas 1280x720, not blank)', drawn.w === 1280 && drawn.h === 720 && drawn.colours >= 8,
      JSON.stringify(drawn));
    const shots = process.env.BERTH_SMOKE_SHOTS; // a directory: keep what the viewer showed
    if (shots) await viewer.screenshot({ path: `${shots}/live-${mode}.png` });
    const box = await viewer.locator('#screen canvas').boundingBox();
    check('the canvas is scaled to the window', !!box && box.width <= 960 && box.height <= 540 && box.width >= 900, JSON.stringify(box));

    // Input through the viewer: a click in the middle of the screen lands in the remote page.
    const before = await remotePage.evaluate(() => window.clicks);
    await viewer.mouse.click(box.x + box.width / 2, box.y + box.height * 0.6);
    let clicks = before;
    for (let i = 0; i < 20 && clicks === before; i++) { await sleep(100); clicks = await remotePage.evaluate(() => window.clicks); }
    if (mode === 'view-only') {
      check('view-only: a click through the viewer changes nothing in the session', clicks === before, `clicks ${before} -> ${clicks}`);
      check('view-only: the page says so', (await viewer.textContent('#state')) === 'View only');
    } else {
      check('interactive: a click through the viewer reaches the session', clicks > before, `clicks ${before} -> ${clicks}`);
    }

    const second = await ctx.newPage();
    watch(second);
    await second.goto(`${origin}/`);
    check('a second viewer connects at the same time', await connected(second) && await connected(viewer, 100));
    await second.close();

    const upgrades = gw.upgrades;
    gw.drop();
    await viewer.waitForSelector('body[data-state="waiting"]', { timeout: 5000 }).catch(() => {});
    check('after a dropped connection the viewer reconnects by itself', await connected(viewer, 8000) && gw.upgrades > upgrades,
      `upgrades ${upgrades} -> ${gw.upgrades}`);

    check('no CSP violation or script error in the viewers', problems.length === 0, problems.join(' | '));
    gw.refuse(); // from here on the 401s are expected console errors
    const ended = await viewer.waitForSelector('body[data-state="ended"]', { timeout: 8000 }).then(() => true, () => false);
    const attempts = gw.upgrades;
    await sleep(1500);
    if (shots) await viewer.screenshot({ path: `${shots}/live-${mode}-ended.png` });
    check('once the gateway answers 401 the viewer says the session ended and stops trying', ended && gw.upgrades === attempts,
      await viewer.evaluate(() => `${document.body.dataset.state}: ${document.getElementById('state').textContent}`));
  } finally {
    gw.close();
    await browser.close();
    await remote.close();
  }
}

async function bind(port, secret, body) {
  const r = await request(port, 'POST', '/.berth/bind', secret, { body, headers: { 'Content-Type': 'application/json' } });
  console.log(r.status, r.body.trim());
}

async function persist(port, secret, sitePort, phase) {
  const { chromium } = require('playwright-core');
  const pw = await chromium.connectOverCDP(`http://${HOST}:${port}`, { headers: { 'X-Berth-Secret': secret } });
  const ctx = pw.contexts()[0];
  const page = ctx.pages()[0] || await ctx.newPage();
  const url = `http://${HOST}:${sitePort}/${phase === 'set' ? 'persist' : 'landing'}`;
  await page.goto(url);
  const cookies = await ctx.cookies(url);
  const sess = cookies.find((c) => c.name === 'sess');
  const stored = await page.evaluate(() => localStorage.getItem('berth'));
  const what = phase === 'set' ? 'set in the first session' : 'back in the next session (same profile volume)';
  check(`session cookie ${what}`, !!sess && sess.value === 'abc123' && sess.expires === -1, JSON.stringify(cookies));
  check(`localStorage ${what}`, stored === 'kept', String(stored));
  await pw.close();
}

async function pageURL(port, secret) {
  const list = await json(port, 'GET', '/json/list', secret);
  const page = list.data.find((t) => t.type === 'page');
  console.log(page ? `${page.url} ${page.title}` : 'none');
}

const [cmd, ...args] = process.argv.slice(2);
const commands = { receiver, site, freeport, wait, auth, cdp, files, vnc, live, bind, 'page-url': pageURL,
  'persist-set': (p, s, site) => persist(p, s, site, 'set'), 'persist-check': (p, s, site) => persist(p, s, site, 'check') };
if (!commands[cmd]) {
  console.error(`unknown command ${cmd}`);
  process.exit(2);
}
const servers = new Set(['receiver', 'site']);
Promise.resolve(commands[cmd](...args))
  .then(() => {
    // Servers keep running; every other command ends here even if a socket lingers.
    if (!servers.has(cmd)) process.exit(failed ? 1 : 0);
  })
  .catch((err) => {
    console.log(`FAIL ${cmd} crashed  (${err && err.stack ? err.stack.split('\n').slice(0, 3).join(' | ') : err})`);
    process.exit(1); // open connections (a Playwright browser) would keep Node alive
  });
