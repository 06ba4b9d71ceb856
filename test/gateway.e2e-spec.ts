import { IncomingMessage, Server, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { SessionsRepository } from '../src/sessions/sessions.repository';
import { upstreamSecret } from '../src/sessions/session-secrets';
import { PgListener } from '../src/database/pg-listener';
import { SESSION_CHANGED_CHANNEL } from '../src/sessions/session-change-feed';
import { api, Berth, eventually, httpRequest, insertSession, resetDatabase, sleep, sql, startBerth, startGateway } from './support/berth-harness';
import { testConfig } from './support/test-config';

/**
 * The gateway against upstreams the test controls: session rows point at a
 * local server that echoes what it received, so every header the container
 * would see can be checked, and failures can be staged precisely.
 */
interface Echo {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bodyLength: number;
}

interface Upstream {
  url: string;
  server: Server;
  wss: WebSocketServer;
  close(): Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/die')) {
      // Accepts the request, then vanishes before answering.
      req.socket.destroy();
      return;
    }
    let bodyLength = 0;
    req.on('data', (chunk: Buffer) => (bodyLength += chunk.length));
    req.on('end', () => {
      const echo: Echo = { method: req.method!, url: req.url!, headers: req.headers, bodyLength };
      res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive, x-upstream-private', 'x-upstream-private': 'no' });
      res.end(JSON.stringify(echo));
    });
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket, req) => {
    socket.send(JSON.stringify({ headers: req.headers, url: req.url }));
    socket.on('message', (data, binary) => socket.send(data, { binary }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    wss,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function openSocket(url: string, headers: Record<string, string> = {}): Promise<{ socket: WebSocket; first: any }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.once('message', (data: Buffer) => resolve({ socket, first: JSON.parse(data.toString()) }));
    socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    socket.once('error', reject);
  });
}

describe('gateway: authentication, forwarding and revocation (real Postgres)', () => {
  let berth: Berth;
  let upstream: Upstream;
  const config = testConfig();
  let port: string;
  const hostOf = (id: string) => `${id}.localhost:${port}`;

  beforeAll(async () => {
    await resetDatabase();
    upstream = await startUpstream();
    // API with the embedded gateway; no worker: these sessions have no containers.
    berth = await startBerth({}, { api: true, worker: false });
    port = new URL(berth.url).port;
  });

  afterAll(async () => {
    await berth?.close();
    await upstream?.close();
  });

  it('refuses a missing, wrong or other session\'s token with the same 401, on both forms, HTTP and WebSocket', async () => {
    const a = await insertSession({ upstreamUrl: upstream.url });
    const b = await insertSession({ upstreamUrl: upstream.url });
    const unknown = '6f1d2c3b-0000-4000-8000-000000000000';
    const attempts: { id: string; token?: string }[] = [{ id: a.id }, { id: a.id, token: 'x'.repeat(43) }, { id: a.id, token: b.token }, { id: unknown, token: a.token }];
    const bodies = new Set<string>();
    for (const { id, token } of attempts) {
      const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const path = await httpRequest(`${berth.url}/s/${id}/hello`, { headers: auth });
      expect(path.status).toBe(401);
      const host = await httpRequest(`${berth.url}/hello${token ? `?token=${token}` : ''}`, { host: hostOf(id) });
      expect(host.status).toBe(401);
      if (token) bodies.add(path.body);
      await expect(openSocket(`ws://127.0.0.1:${port}/s/${id}/ws`, auth)).rejects.toThrow(/HTTP 401/);
      await expect(openSocket(`ws://127.0.0.1:${port}/ws`, { ...auth, host: hostOf(id) })).rejects.toThrow(/HTTP 401/);
    }
    // A wrong token and an unknown session are indistinguishable.
    expect(bodies.size).toBe(1);
    expect(JSON.parse([...bodies][0])).toMatchObject({ statusCode: 401, error: 'Unauthorized' });
    // Nothing reached the upstream.
    expect(upstream.wss.clients.size).toBe(0);
  });

  it('forwards the path form with a bearer token: prefix stripped, its own secret added, credentials and forged headers removed', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    const res = await httpRequest(`${berth.url}/s/${s.id}/some/page?x=1&token=${s.token}&y=2`, {
      headers: {
        connection: 'keep-alive, x-hop',
        'x-hop': 'must not pass',
        te: 'trailers',
        'x-berth-secret': 'forged',
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-host': 'evil.example',
        cookie: 'theirs=1',
        'x-custom': 'kept',
      },
    });
    expect(res.status).toBe(200);
    const echo = JSON.parse(res.body) as Echo;
    expect(echo.url).toBe('/some/page?x=1&y=2');
    expect(echo.headers['x-berth-secret']).toBe(upstreamSecret(config, s.id));
    expect(echo.headers.authorization).toBeUndefined();
    expect(echo.headers['x-hop']).toBeUndefined();
    expect(echo.headers.te).toBeUndefined();
    expect(echo.headers['x-custom']).toBe('kept');
    expect(echo.headers.cookie).toBe('theirs=1');
    // The client's own chain is kept only from a loopback peer (a proxy in front on this host); its address is appended.
    expect(echo.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(echo.headers['x-forwarded-proto']).toBe('http');
    expect(echo.headers['x-forwarded-host']).toBe(`127.0.0.1:${port}`);
    expect(echo.headers['x-forwarded-prefix']).toBe(`/s/${s.id}`);
    // The upstream's own hop-by-hop headers stop at the gateway too.
    expect(res.headers['x-upstream-private']).toBeUndefined();
    expect(JSON.stringify(echo)).not.toContain(s.token);

    const bearer = await httpRequest(`${berth.url}/s/${s.id}/`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(JSON.parse(bearer.body).headers.authorization).toBeUndefined();
    // The path form never sets or reads cookies.
    expect(bearer.headers['set-cookie']).toBeUndefined();
    const cookieOnly = await httpRequest(`${berth.url}/s/${s.id}/`, { headers: { cookie: `berth_token=${s.token}` } });
    expect(cookieOnly.status).toBe(401);
  });

  it('swaps ?token= for a host-only cookie on the session origin, then forwards without it', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    const first = await httpRequest(`${berth.url}/page?a=1&token=${s.token}`, { host: hostOf(s.id) });
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe('/page?a=1');
    const setCookie = String(first.headers['set-cookie']);
    expect(setCookie).toMatch(/^berth_token=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/);
    const cookie = setCookie.split(';')[0];
    const page = await httpRequest(`${berth.url}/page?a=1`, { host: hostOf(s.id), headers: { cookie: `${cookie}; mine=2` } });
    expect(page.status).toBe(200);
    const echo = JSON.parse(page.body) as Echo;
    expect(echo.url).toBe('/page?a=1');
    expect(echo.headers.cookie).toBe('mine=2');
    expect(JSON.stringify(echo)).not.toContain(s.token);
    // The cookie belongs to this session's host only: another session's host ignores it.
    const other = await insertSession({ upstreamUrl: upstream.url });
    expect((await httpRequest(`${berth.url}/page`, { host: hostOf(other.id), headers: { cookie } })).status).toBe(401);
  });

  it('splices WebSockets, refusing a cookie from another session\'s origin', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    const { socket, first } = await openSocket(`ws://127.0.0.1:${port}/s/${s.id}/ws?token=${s.token}`);
    expect(first.url).toBe('/ws');
    expect(first.headers['x-berth-secret']).toBe(upstreamSecret(config, s.id));
    const echoed = await new Promise<Buffer>((resolve) => {
      socket.once('message', (data: Buffer) => resolve(data));
      socket.send(Buffer.alloc(200_000, 7));
    });
    expect(echoed.length).toBe(200_000);
    socket.close();

    const cookie = `berth_token=${s.token}`;
    const own = `http://${s.id}.localhost:${port}`;
    const { socket: allowed } = await openSocket(`ws://127.0.0.1:${port}/ws`, { host: hostOf(s.id), cookie, origin: own });
    allowed.close();
    await expect(
      openSocket(`ws://127.0.0.1:${port}/ws`, { host: hostOf(s.id), cookie, origin: `http://6f1d2c3b-0000-4000-8000-000000000001.localhost:${port}` }),
    ).rejects.toThrow(/HTTP 403/);
  });

  it('carries a WebSocket to a reader that stops and resumes, intact and in order (backpressure)', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    const { socket } = await openSocket(`ws://127.0.0.1:${port}/s/${s.id}/ws`, { authorization: `Bearer ${s.token}` });
    // 48 MiB each way: far more than the kernel buffers, so the splicer must pause
    // one side while the other cannot take more, and resume it when it drains.
    const count = 48;
    const message = (i: number) => Buffer.alloc(1024 * 1024, i);
    const received: Buffer[] = [];
    const done = new Promise<void>((resolve) => {
      socket.on('message', (data: Buffer) => {
        received.push(data);
        if (received.length === count) resolve();
      });
    });
    try {
      socket.pause();
      for (let i = 0; i < count; i++) socket.send(message(i));
      await sleep(1500);
      expect(received).toHaveLength(0);
      socket.resume();
      // A side left paused would stall here for good.
      await Promise.race([done, sleep(15_000).then(() => Promise.reject(new Error(`stalled after ${received.length} of ${count} messages`)))]);
      received.forEach((data, i) => expect(data.equals(message(i))).toBe(true));
    } finally {
      socket.terminate();
    }
  }, 30_000);

  it('streams request and response bodies', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    const body = Buffer.alloc(3 * 1024 * 1024, 'a');
    const res = await httpRequest(`${berth.url}/s/${s.id}/upload`, { method: 'POST', body, headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/octet-stream' } });
    expect(JSON.parse(res.body)).toMatchObject({ method: 'POST', bodyLength: body.length });
  });

  it('keeps the agent\'s control paths to Berth', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    const res = await httpRequest(`${berth.url}/s/${s.id}/.berth/bind`, { method: 'POST', headers: { authorization: `Bearer ${s.token}` } });
    expect(res.status).toBe(404);
  });

  it('answers a dead upstream with 502 and keeps serving other sessions', async () => {
    const dying = await insertSession({ upstreamUrl: upstream.url });
    const refused = await insertSession({ upstreamUrl: 'http://127.0.0.1:1' });
    const healthy = await insertSession({ upstreamUrl: upstream.url });
    const died = await httpRequest(`${berth.url}/s/${dying.id}/die`, { headers: { authorization: `Bearer ${dying.token}` } });
    expect(died.status).toBe(502);
    expect(JSON.parse(died.body)).toMatchObject({ statusCode: 502, error: 'Bad Gateway' });
    const nobody = await httpRequest(`${berth.url}/s/${refused.id}/`, { headers: { authorization: `Bearer ${refused.token}` } });
    expect(nobody.status).toBe(502);
    await expect(openSocket(`ws://127.0.0.1:${port}/s/${refused.id}/ws`, { authorization: `Bearer ${refused.token}` })).rejects.toThrow(/HTTP 502/);
    const fine = await httpRequest(`${berth.url}/s/${healthy.id}/`, { headers: { authorization: `Bearer ${healthy.token}` } });
    expect(fine.status).toBe(200);
  });

  it('says a starting session is not ready yet, with Retry-After', async () => {
    const s = await insertSession({ upstreamUrl: null, status: 'starting' });
    const res = await httpRequest(`${berth.url}/s/${s.id}/`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
  });

  it('revokes the token and closes open WebSockets within a second of a change committed anywhere', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    const { socket } = await openSocket(`ws://127.0.0.1:${port}/s/${s.id}/ws`, { authorization: `Bearer ${s.token}` });
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    // Another process ending the session: a plain UPDATE, no call into this one.
    const ended = Date.now();
    await sql(`UPDATE sessions SET status = 'stopping', stop_status = 'stopped', end_reason = 'deleted', deleted_at = now() WHERE id = $1`, [s.id]);
    expect((await closed) - ended).toBeLessThan(1000);
    const after = await httpRequest(`${berth.url}/s/${s.id}/`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(after.status).toBe(401);
  });

  it('stops a token before the DELETE answers, however late the NOTIFY', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    const get = (token: string) => httpRequest(`${berth.url}/s/${s.id}/`, { headers: { authorization: `Bearer ${token}` } });
    expect((await get(s.token)).status).toBe(200); // the route, with its token hashes, is now cached
    // Postgres' NOTIFY can reach this process after the API has answered (it comes on another
    // connection); hold every one back for 1.5 s to make that window wide.
    const channels = (berth.app.get(PgListener) as unknown as { channels: Map<string, Set<{ onNotification(payload: string): void }>> }).channels;
    const held: { listener: { onNotification(payload: string): void }; original: (payload: string) => void }[] = [];
    for (const listener of channels.get(SESSION_CHANGED_CHANNEL) ?? []) {
      const original = listener.onNotification.bind(listener);
      held.push({ listener, original });
      listener.onNotification = (payload) => void sleep(1500).then(() => original(payload));
    }
    try {
      expect(held.length).toBeGreaterThan(0);
      expect((await api(berth.url, 'DELETE', `/api/v1/terminals/${s.id}`)).status).toBe(200);
      expect((await get(s.token)).status).toBe(401);
    } finally {
      for (const { listener, original } of held) listener.onNotification = original;
    }
  });

  it('serves routes from memory: one database read per session in steady state', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    const repository = berth.app.get(SessionsRepository);
    const reads = jest.spyOn(repository, 'findRoute');
    try {
      for (let i = 0; i < 20; i++) {
        const res = await httpRequest(`${berth.url}/s/${s.id}/`, { headers: { authorization: `Bearer ${s.token}` } });
        expect(res.status).toBe(200);
      }
      expect(reads.mock.calls.filter(([id]) => id === s.id)).toHaveLength(1);
    } finally {
      reads.mockRestore();
    }
  });

  it('marks the session active on HTTP and WebSocket traffic, one batched write at a time', async () => {
    const s = await insertSession({ upstreamUrl: upstream.url });
    await sql(`UPDATE sessions SET last_activity_at = now() - interval '1 hour' WHERE id = $1`, [s.id]);
    const before = Date.now();
    await httpRequest(`${berth.url}/s/${s.id}/`, { headers: { authorization: `Bearer ${s.token}` } });
    const activeAfterHttp = await eventually(async () => {
      const [row] = await sql<{ last_activity_at: Date }>(`SELECT last_activity_at FROM sessions WHERE id = $1`, [s.id]);
      return row.last_activity_at.getTime() >= before - 1000 ? row.last_activity_at : undefined;
    }, 3000, 'activity from HTTP');
    expect(activeAfterHttp).toBeDefined();

    const { socket } = await openSocket(`ws://127.0.0.1:${port}/s/${s.id}/ws`, { authorization: `Bearer ${s.token}` });
    await sleep(400);
    await sql(`UPDATE sessions SET last_activity_at = now() - interval '1 hour' WHERE id = $1`, [s.id]);
    const mark = Date.now();
    socket.send('frame');
    await eventually(async () => {
      const [row] = await sql<{ last_activity_at: Date }>(`SELECT last_activity_at FROM sessions WHERE id = $1`, [s.id]);
      return row.last_activity_at.getTime() >= mark - 1000;
    }, 3000, 'activity from a WebSocket frame');
    socket.close();
  });
});

describe('gateway as its own role (restarting the API drops no session WebSocket)', () => {
  let berth: Berth;
  let upstream: Upstream;
  let gateway: Awaited<ReturnType<typeof startGateway>>;

  beforeAll(async () => {
    await resetDatabase();
    upstream = await startUpstream();
    berth = await startBerth({ RUN_GATEWAY_IN_API: 'false' }, { api: true, worker: false });
    gateway = await startGateway(berth.url);
  });

  afterAll(async () => {
    await gateway?.close();
    await berth?.close();
    await upstream?.close();
  });

  it('forwards the API, serves sessions, and keeps WebSockets open while the API restarts', async () => {
    // API traffic goes through to the API process.
    const health = await httpRequest(`${gateway.url}/health`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body).status).toBe('ok');
    // The API process itself no longer serves sessions.
    const s = await insertSession({ upstreamUrl: upstream.url });
    expect((await httpRequest(`${berth.url}/s/${s.id}/`, { headers: { authorization: `Bearer ${s.token}` } })).status).toBe(404);

    const { socket } = await openSocket(`ws://127.0.0.1:${gateway.port}/s/${s.id}/ws`, { authorization: `Bearer ${s.token}` });
    const apiPort = new URL(berth.url).port;
    await berth.app.close();
    const down = await httpRequest(`${gateway.url}/health`);
    expect(down.status).toBe(502);
    expect(down.headers['retry-after']).toBe('1');
    // Still connected, still echoing, with the API gone.
    const echoed = await new Promise<string>((resolve) => {
      socket.once('message', (data: Buffer) => resolve(data.toString()));
      socket.send('still here');
    });
    expect(echoed).toBe('still here');
    berth = await startBerth({ RUN_GATEWAY_IN_API: 'false', PORT: apiPort }, { api: true, worker: false });
    expect((await httpRequest(`${gateway.url}/health`)).status).toBe(200);
    expect(socket.readyState).toBe(WebSocket.OPEN);
    socket.close();
    // Not a session and not an API route: the API's 404, through the gateway.
    expect((await httpRequest(`${gateway.url}/nope`)).status).toBe(404);
  });
});
