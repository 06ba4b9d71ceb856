#!/usr/bin/env node
// Helper for smoke-test.sh: runs on the host (Node 20 + the repository's `ws`), talks only
// to 127.0.0.1.
//
//   smoke-helper.js receiver PORTFILE STATUS     callback stand-in: one JSON line per request
//   smoke-helper.js freeport                     print a free TCP port on 127.0.0.1
//   smoke-helper.js wait PORT SECRET             wait until /.berth/health answers 200
//   smoke-helper.js session PORT SECRET SID      HTTP, auth and WebSocket checks (bound)
//   smoke-helper.js pool PORT POOL SECRET SID CB checks of an unbound container and its bind
//   smoke-helper.js hold PORT SECRET [MS]        attach, print "open", then the close code
//                                                (gives up after MS, default 10000)
// Check lines are "ok   name" / "FAIL name (detail)"; the exit code is 1 if any failed.
'use strict';
const http = require('node:http');
const net = require('node:net');
const crypto = require('node:crypto');
const WebSocket = require('ws');

const HOST = '127.0.0.1';
let failed = 0;
function check(name, ok, detail) {
  console.log((ok ? 'ok   ' : 'FAIL ') + name + (!ok && detail !== undefined ? `  (${detail})` : ''));
  if (!ok) failed++;
}
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function request(port, method, path, secret, body) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (secret !== undefined) headers['X-Berth-Secret'] = secret;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const req = http.request({ host: HOST, port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

// A WebSocket with a "read until" helper over the binary output stream.
function connect(port, secret) {
  return new Promise((resolve, reject) => {
    const headers = secret === undefined ? {} : { 'X-Berth-Secret': secret };
    const ws = new WebSocket(`ws://${HOST}:${port}/ws`, { headers });
    const conn = { ws, out: '', closed: null, waiters: [] };
    const wake = () => { conn.waiters.forEach((w) => w()); };
    ws.on('unexpected-response', (req, res) => { res.resume(); reject(Object.assign(new Error('refused'), { status: res.statusCode })); });
    ws.on('open', () => resolve(conn));
    ws.on('error', (err) => reject(err));
    ws.on('message', (data, isBinary) => { conn.out += isBinary ? data.toString('utf8') : '[text]' + data; wake(); });
    ws.on('close', (code) => { conn.closed = code; wake(); });
    conn.send = (obj) => ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
    conn.input = (text) => conn.send({ type: 'input', data: text });
    conn.until = (needle, ms = 5000) => new Promise((res) => {
      const deadline = setTimeout(() => done(false), ms);
      const test = () => { if (conn.out.includes(needle)) done(true); else if (conn.closed !== null) done(false); };
      function done(ok) {
        clearTimeout(deadline);
        conn.waiters = conn.waiters.filter((w) => w !== test);
        res(ok);
      }
      conn.waiters.push(test);
      test();
    });
    conn.closeCode = (ms = 5000) => new Promise((res) => {
      if (conn.closed !== null) return res(conn.closed);
      const t = setTimeout(() => res(null), ms);
      ws.once('close', (code) => { clearTimeout(t); res(code); });
    });
  });
}

async function upgradeStatus(port, secret) {
  try {
    const c = await connect(port, secret);
    c.ws.terminate();
    return 101;
  } catch (err) {
    return err.status || String(err.message);
  }
}

async function refusedEverywhere(port, secret) {
  const bad = [];
  for (const path of ['/.berth/health', '/.berth/bind', '/', '/static/xterm.js', '/ws', '/nope']) {
    const r = await request(port, 'GET', path, secret);
    if (r.status !== 401 || r.body.trim() !== '{"error":"unauthorized"}') bad.push(`${path}: ${r.status}`);
  }
  const up = await upgradeStatus(port, secret);
  if (up !== 401) bad.push(`upgrade: ${up}`);
  return bad;
}

async function session(port, secret, sid) {
  let bad = await refusedEverywhere(port, undefined);
  check('every path and the upgrade answer 401 without X-Berth-Secret', bad.length === 0, bad.join(', '));
  bad = await refusedEverywhere(port, 'wrong-' + secret);
  check('every path and the upgrade answer 401 with a wrong secret', bad.length === 0, bad.join(', '));

  let r = await request(port, 'GET', '/.berth/health', secret);
  check('health says ready and bound to the session', r.status === 200 &&
    r.body.trim() === JSON.stringify({ ready: true, bound: true, session_id: sid }), `${r.status} ${r.body}`);
  r = await request(port, 'GET', '/', secret);
  check('GET / serves the page with CSP, no-store, no-referrer', r.status === 200 && r.body.includes('Berth terminal') &&
    /default-src 'self'/.test(r.headers['content-security-policy'] || '') && r.headers['cache-control'] === 'no-store' &&
    r.headers['referrer-policy'] === 'no-referrer' && !r.headers['set-cookie'], `${r.status} ${JSON.stringify(r.headers)}`);
  check('the page uses relative URLs only', !/(src|href)="\//.test(r.body));
  r = await request(port, 'GET', '/static/xterm.js', secret);
  check('GET /static/xterm.js', r.status === 200 && /javascript/.test(r.headers['content-type']) && r.body.length > 100000, r.status);
  const r2 = await request(port, 'GET', '/static/app.js', secret);
  check('GET /static/app.js', r2.status === 200 && r2.body.includes("'ws'"), r2.status);
  r = await request(port, 'GET', '/static/index.html', secret);
  check('unlisted files are 404', r.status === 404, r.status);

  const a = await connect(port, secret);
  a.send('garbage');
  a.send({ type: 'resize', cols: 100, rows: 30 });
  a.input('echo berth-$((100+23))\r');
  check('shell echoes', await a.until('berth-123'), a.out.slice(-200));
  a.send(Buffer.from('stty size\r'));
  check('resize applied, binary input', await a.until('30 100'), a.out.slice(-200));
  a.input('echo "who-$(id -u)-$HOME-$TERM-$PWD"\r');
  check('shell runs as uid 1000 in /home/berth with TERM=xterm-256color',
    await a.until('who-1000-/home/berth-xterm-256color-/home/berth'), a.out.slice(-200));
  a.input('echo "vars-$(env | grep -cE "^(BERTH_|GOMAXPROCS=)")-end"\r');
  check('the shell sees no BERTH_ variables (nor the agent\'s GOMAXPROCS)', await a.until('vars-0-end'), a.out.slice(-200));
  a.input('cat /proc/1/environ >/dev/null 2>&1 && echo environ-READ || echo environ-$((6*7))\r');
  check('the shell cannot read /proc/1/environ', await a.until('environ-42'), a.out.slice(-200));
  a.input('echo ro-$(touch /x 2>/dev/null && echo writable || echo $((1+1)))\r');
  check('the root filesystem is read-only', await a.until('ro-2'), a.out.slice(-200));

  const b = await connect(port, secret);
  check('second client gets the scrollback', await b.until('berth-123'), b.out.slice(-200));
  a.input('exit 7\r');
  check('shell exit is announced', await a.until('[shell exited with code 7; reconnect for a new shell]'), a.out.slice(-200));
  const codes = [await a.closeCode(), await b.closeCode()];
  check('both clients closed with 4000 after the exit', codes[0] === 4000 && codes[1] === 4000, codes.join(','));
  const c = await connect(port, secret);
  c.input('echo again-$((1+1))\r');
  check('new shell on reconnect', await c.until('again-2'), c.out.slice(-200));
  c.ws.close();
  await c.closeCode();
}

async function pool(port, poolSecret, secret, sid, callbackURL) {
  let r = await request(port, 'GET', '/.berth/health', poolSecret);
  check('unbound: health says ready, bound:false', r.status === 200 &&
    r.body.trim() === JSON.stringify({ ready: true, bound: false, session_id: null }), `${r.status} ${r.body}`);
  r = await request(port, 'GET', '/', poolSecret);
  check('unbound: terminal routes are closed (503)', r.status === 503, r.status);
  const bad = await refusedEverywhere(port, 'wrong');
  check('unbound: a wrong secret gets 401', bad.length === 0, bad.join(', '));
  const bind = { session_id: sid, secret_sha256: sha256(secret), callback_url: callbackURL, callback_token: 'cb-pool', options: {} };
  r = await request(port, 'POST', '/.berth/bind', poolSecret, bind);
  check('bind with the pool secret', r.status === 200 && r.body.trim() === '{"bound":true}', `${r.status} ${r.body}`);
  r = await request(port, 'GET', '/.berth/health', poolSecret);
  check('the pool secret gets 401 after the bind', r.status === 401, r.status);
  r = await request(port, 'GET', '/.berth/health', secret);
  check('the session secret works after the bind', r.status === 200 &&
    r.body.trim() === JSON.stringify({ ready: true, bound: true, session_id: sid }), `${r.status} ${r.body}`);
  r = await request(port, 'POST', '/.berth/bind', secret, { ...bind, secret_sha256: sha256('other') });
  check('a second bind is 409', r.status === 409, r.status);
  const c = await connect(port, secret);
  c.input('echo pooled-$((2*3))\r');
  check('bound pool container serves the shell', await c.until('pooled-6'), c.out.slice(-200));
  c.ws.close();
  await c.closeCode();
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  switch (cmd) {
    case 'receiver': {
      const [portfile, status] = args;
      const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
          let body = null;
          try { body = JSON.parse(Buffer.concat(chunks).toString() || 'null'); } catch { body = '<invalid json>'; }
          console.log(JSON.stringify({ t: Date.now(), method: req.method, path: req.url,
            auth: req.headers.authorization || null, type: req.headers['content-type'] || null, body }));
          res.writeHead(Number(status)).end();
        });
      });
      server.listen(0, HOST, () => require('node:fs').writeFileSync(portfile, String(server.address().port)));
      return; // runs until killed
    }
    case 'freeport': {
      const s = net.createServer();
      s.listen(0, HOST, () => { console.log(s.address().port); s.close(); });
      return;
    }
    case 'wait': {
      const [port, secret] = args;
      for (let i = 0; i < 100; i++) {
        try {
          if ((await request(port, 'GET', '/.berth/health', secret)).status === 200) return;
        } catch { /* not listening yet */ }
        await sleep(50);
      }
      process.exit(1);
    }
    case 'session': await session(...args); break;
    case 'pool': await pool(...args); break;
    case 'hold': {
      const c = await connect(args[0], args[1]);
      console.log('open');
      console.log(await c.closeCode(Number(args[2] || 10000)));
      c.ws.terminate();
      return;
    }
    default:
      console.error('unknown command ' + cmd);
      process.exit(2);
  }
  process.exit(failed ? 1 : 0);
}

main().catch((err) => { check('helper ran', false, err.stack); process.exit(1); });
