import { createServer, IncomingMessage, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { verifySignature } from '../src/webhooks/webhook-signature';
import { Berth, api, containersOf, eventually, resetDatabase, sleep, startBerth, waitForStatus } from './support/berth-harness';
import { TEST_ADMIN_KEY } from './support/test-config';
import { as, tenantWithKey } from './support/tenants';
import { runInTerminal } from './support/terminal-client';

describe('tenants, keys, reuse, idle timeouts, quotas, events (real Postgres, Redis, Docker)', () => {
  let berth: Berth;

  beforeAll(async () => {
    await resetDatabase();
    berth = await startBerth({ RATE_LIMIT_PER_MINUTE: '100000', WEBHOOK_URL_ALLOW: '127.0.0.1', EXPIRING_SOON_SECONDS: '3' });
  });

  afterAll(async () => {
    await berth?.close();
  });

  it('keeps tenants apart, and refuses no key, a wrong key and a revoked key at once', async () => {
    const a = await tenantWithKey(berth.url, 'tenant-a');
    const b = await tenantWithKey(berth.url, 'tenant-b');
    const session = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'alice' }, as(a.key));
    expect(session.status).toBe(202);
    const id = session.body.id;
    await eventually(async () => (await api(berth.url, 'GET', `/api/v1/sessions/${id}`, undefined, as(a.key))).body.status === 'started', 20_000, 'started');
    // The admin key is the default tenant's: it does not see tenant A's session either.
    expect((await api(berth.url, 'GET', `/api/v1/sessions/${id}`)).status).toBe(404);

    // Tenant B: every route answers 404 for A's session, and lists show nothing of it.
    for (const [method, path, body] of [
      ['GET', `/api/v1/sessions/${id}`],
      ['GET', `/api/v1/terminals/${id}`],
      ['POST', `/api/v1/sessions/${id}/heartbeat`],
      ['POST', `/api/v1/sessions/${id}/extend`, { ttl_seconds: 60 }],
      ['GET', `/api/v1/sessions/${id}/lifecycle`],
      ['GET', `/api/v1/sessions/${id}/audit`],
      ['GET', `/api/v1/sessions/${id}/events`],
      ['DELETE', `/api/v1/sessions/${id}`],
    ] as [string, string, unknown?][]) {
      const response = await api(berth.url, method, path, body, as(b.key));
      expect({ method, path, status: response.status }).toEqual({ method, path, status: 404 });
    }
    expect((await api(berth.url, 'GET', '/api/v1/sessions', undefined, as(b.key))).body.items).toEqual([]);
    expect((await api(berth.url, 'DELETE', '/api/v1/sessions?owner=alice', undefined, as(b.key))).body.items).toEqual([]);
    expect((await api(berth.url, 'GET', '/api/v1/sessions', undefined, as(a.key))).body.items.map((s: { id: string }) => s.id)).toEqual([id]);
    expect((await api(berth.url, 'GET', `/api/v1/sessions/${id}`, undefined, as(a.key))).body.status).toBe('started');

    // No key, a wrong key: 401. A tenant key on an admin route: 403.
    expect((await api(berth.url, 'GET', '/api/v1/sessions', undefined, { authorization: '' })).status).toBe(401);
    expect((await api(berth.url, 'GET', '/api/v1/sessions', undefined, as('bk_not-a-key-at-all-not-a-key-at-all'))).status).toBe(401);
    expect((await api(berth.url, 'GET', '/api/v1/tenants', undefined, as(a.key))).status).toBe(403);

    // Revoked: refused on the very next request (the cache was warm).
    expect((await api(berth.url, 'DELETE', `/api/v1/tenants/${a.id}/keys/${a.keyId}`)).status).toBe(204);
    await eventually(async () => (await api(berth.url, 'GET', '/api/v1/sessions', undefined, as(a.key))).status === 401, 1000, 'the revoked key to be refused');
    // A disabled tenant's keys stop too.
    const c = await tenantWithKey(berth.url, 'tenant-c');
    expect((await api(berth.url, 'GET', '/api/v1/sessions', undefined, as(c.key))).status).toBe(200);
    await api(berth.url, 'DELETE', `/api/v1/tenants/${c.id}`);
    await eventually(async () => (await api(berth.url, 'GET', '/api/v1/sessions', undefined, as(c.key))).status === 401, 1000, 'the disabled tenant to be refused');
  });

  it('creates exactly one session for ten concurrent identical reuse launches; an Idempotency-Key replays', async () => {
    const launches = await Promise.all(
      Array.from({ length: 10 }, () => api(berth.url, 'POST', '/api/v1/terminals', { owner: 'bob@example.com', workspace: 'proj', reuse: true })),
    );
    const ids = new Set(launches.map((launch) => launch.body.id));
    expect(ids.size).toBe(1);
    expect(launches.filter((launch) => launch.status === 202)).toHaveLength(1);
    expect(launches.filter((launch) => launch.status === 200)).toHaveLength(9);
    // Each caller got its own working token.
    expect(new Set(launches.map((launch) => launch.body.access_token)).size).toBe(10);
    const [id] = [...ids];
    const started = await waitForStatus(berth.url, id, ['started']);
    await runInTerminal(started.path_url, launches[7].body.access_token, 'echo reused-ok', 'reused-ok');

    const first = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'carol' }, { 'idempotency-key': 'launch-42' });
    const replay = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'carol' }, { 'idempotency-key': 'launch-42' });
    expect(first.status).toBe(202);
    expect(replay.status).toBe(200);
    expect(replay.body.id).toBe(first.body.id);
    const different = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'dave' }, { 'idempotency-key': 'launch-42' });
    expect(different.status).toBe(422);
  });

  it('stops an idle session within a second of its deadline; heartbeats and gateway traffic keep one alive', async () => {
    const idle = await api(berth.url, 'POST', '/api/v1/terminals', { idle_timeout_seconds: 3 });
    const beating = await api(berth.url, 'POST', '/api/v1/terminals', { idle_timeout_seconds: 3, ttl_seconds: 3600 });
    const talking = await api(berth.url, 'POST', '/api/v1/terminals', { idle_timeout_seconds: 3 });
    const [idleStarted, , talkingStarted] = await Promise.all([idle, beating, talking].map((s) => waitForStatus(berth.url, s.body.id, ['started'])));

    const life = await api(berth.url, 'GET', `/api/v1/sessions/${idle.body.id}/lifecycle`);
    expect(life.body).toMatchObject({ idle_timeout_seconds: 3, last_activity_source: 'start' });
    const deadline = new Date(life.body.idle_deadline).getTime();
    expect(deadline - new Date(life.body.last_activity_at).getTime()).toBe(3000);
    expect(new Date(life.body.hard_deadline).getTime()).toBe(new Date(idleStarted.expires_at).getTime());

    const keepAlive = setInterval(() => {
      void api(berth.url, 'POST', `/api/v1/sessions/${beating.body.id}/heartbeat`);
      void fetch(`${talkingStarted.path_url}`, { headers: { authorization: `Bearer ${talking.body.access_token}` } });
    }, 700);
    try {
      const stopped = await waitForStatus(berth.url, idle.body.id, ['stopping', 'stopped'], 10_000);
      expect(stopped.end_reason).toBe('idle');
      // Within a second of its deadline (the status was read right after it changed).
      expect(Date.now() - deadline).toBeLessThan(1500);
      await sleep(2500);
      expect((await api(berth.url, 'GET', `/api/v1/sessions/${beating.body.id}`)).body.status).toBe('started');
      const talkingNow = await api(berth.url, 'GET', `/api/v1/sessions/${talking.body.id}`);
      expect(talkingNow.body).toMatchObject({ status: 'started', last_activity_source: 'gateway' });
      const beatingLife = await api(berth.url, 'GET', `/api/v1/sessions/${beating.body.id}/lifecycle`);
      expect(beatingLife.body.last_activity_source).toBe('heartbeat');
      expect(new Date(beatingLife.body.idle_deadline).getTime()).toBeGreaterThan(Date.now());
    } finally {
      clearInterval(keepAlive);
    }
    // extend moves the hard deadline, capped, and says who did it; it never shortens one.
    const extended = await api(berth.url, 'POST', `/api/v1/sessions/${beating.body.id}/extend`, { ttl_seconds: 7200 });
    expect(extended.status).toBe(200);
    const notShortened = await api(berth.url, 'POST', `/api/v1/sessions/${beating.body.id}/extend`, { ttl_seconds: 60 });
    expect(notShortened.body.expires_at).toBe(extended.body.expires_at);
    const lifecycle = await api(berth.url, 'GET', `/api/v1/sessions/${beating.body.id}/lifecycle`);
    expect(lifecycle.body.extensions).toEqual([expect.objectContaining({ type: 'extended', actor: 'admin' })]);
    expect(Math.abs(new Date(lifecycle.body.hard_deadline).getTime() - (Date.now() + 7200_000))).toBeLessThan(5000);
    // The idle session's audit trail says why it ended.
    const audit = await api(berth.url, 'GET', `/api/v1/sessions/${idle.body.id}/audit`);
    expect(audit.body.find((event: { type: string }) => event.type === 'stopping')).toMatchObject({ actor: 'system', data: { reason: 'idle' } });
    await api(berth.url, 'DELETE', `/api/v1/sessions?owner=nobody`);
    for (const s of [beating, talking]) await api(berth.url, 'DELETE', `/api/v1/sessions/${s.body.id}`);
  });

  it('shows stopping then stopped; removal by owner stops all of that owner’s sessions', async () => {
    const ones = await Promise.all([1, 2, 3].map(() => api(berth.url, 'POST', '/api/v1/terminals', { owner: 'erin' })));
    const other = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'frank' });
    await Promise.all([...ones, other].map((s) => waitForStatus(berth.url, s.body.id, ['started'])));
    const removed = await api(berth.url, 'DELETE', '/api/v1/sessions?owner=erin');
    expect(removed.status).toBe(200);
    expect(removed.body.items.map((s: { status: string; end_reason: string }) => [s.status, s.end_reason])).toEqual([
      ['stopping', 'owner_removed'],
      ['stopping', 'owner_removed'],
      ['stopping', 'owner_removed'],
    ]);
    for (const s of ones) expect((await waitForStatus(berth.url, s.body.id, ['stopped'])).status).toBe('stopped');
    for (const s of ones) expect(await containersOf(berth.instance, s.body.id)).toHaveLength(0);
    expect((await api(berth.url, 'GET', `/api/v1/sessions/${other.body.id}`)).body.status).toBe('started');
    await api(berth.url, 'DELETE', `/api/v1/sessions/${other.body.id}`);
  });

  it('enforces per-tenant and per-owner quotas with 429 and Retry-After', async () => {
    const small = await tenantWithKey(berth.url, 'small', { max_sessions: 2, max_sessions_per_owner: 1 });
    expect((await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'g' }, as(small.key))).status).toBe(202);
    const perOwner = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'g' }, as(small.key));
    expect(perOwner.status).toBe(429);
    expect(perOwner.body.message).toMatch(/at most 1 live sessions per owner/);
    expect(perOwner.headers.get('retry-after')).toBeTruthy();
    expect((await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'h' }, as(small.key))).status).toBe(202);
    const perTenant = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'i' }, as(small.key));
    expect(perTenant.status).toBe(429);
    expect(perTenant.body.message).toMatch(/at most 2 live sessions per tenant/);
    await api(berth.url, 'DELETE', '/api/v1/sessions?owner=g', undefined, as(small.key));
    await api(berth.url, 'DELETE', '/api/v1/sessions?owner=h', undefined, as(small.key));
  });

  it('keeps files written in a workspace for the next session of that workspace', async () => {
    const first = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'ws-owner', workspace: 'project-x' });
    const started = await waitForStatus(berth.url, first.body.id, ['started']);
    await runInTerminal(started.path_url, first.body.access_token, 'echo persisted-42 > ~/notes.txt && echo written-ok', 'written-ok');
    // One live session per workspace.
    const again = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'ws-owner', workspace: 'project-x' });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const workspaces = await api(berth.url, 'GET', '/api/v1/workspaces?owner=ws-owner');
    expect(workspaces.body).toEqual([expect.objectContaining({ name: 'project-x', owner: 'ws-owner', session_id: first.body.id })]);
    expect((await api(berth.url, 'DELETE', `/api/v1/workspaces/${workspaces.body[0].id}`)).status).toBe(409);

    await api(berth.url, 'DELETE', `/api/v1/sessions/${first.body.id}`);
    await waitForStatus(berth.url, first.body.id, ['stopped']);
    const second = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'ws-owner', workspace: 'project-x' });
    expect(second.status).toBe(202);
    const next = await waitForStatus(berth.url, second.body.id, ['started']);
    await runInTerminal(next.path_url, second.body.access_token, 'cat ~/notes.txt', 'persisted-42');
    await api(berth.url, 'DELETE', `/api/v1/sessions/${second.body.id}`);
    await waitForStatus(berth.url, second.body.id, ['stopped']);
    expect((await api(berth.url, 'DELETE', `/api/v1/workspaces/${workspaces.body[0].id}`)).status).toBe(204);
  });

  it('streams the phases in order over SSE, and signs webhooks, expiring_soon included', async () => {
    const received: { body: string; signature: string | undefined; type: string }[] = [];
    const receiver: Server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        received.push({ body, signature: req.headers['berth-signature'] as string | undefined, type: JSON.parse(body).type });
        res.writeHead(received.length === 1 ? 500 : 204).end(); // the first delivery fails: it must be retried
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const hook = await api(berth.url, 'POST', '/api/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook` });
      expect(hook.status).toBe(201);
      const refused = await api(berth.url, 'POST', '/api/v1/webhooks', { url: 'http://169.254.169.254/' });
      expect(refused.status).toBe(400);

      const created = await api(berth.url, 'POST', '/api/v1/terminals', { ttl_seconds: 6 });
      const id = created.body.id;
      const events: string[] = [];
      const stream = await fetch(`${berth.url}/api/v1/sessions/${id}/events`, { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } });
      expect(stream.headers.get('content-type')).toMatch(/text\/event-stream/);
      const reader = stream.body!.getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += Buffer.from(value).toString();
        for (const match of buffer.matchAll(/^event: (\S+)$/gm)) if (!events.includes(match[1])) events.push(match[1]);
        if (events.includes('expired')) break;
      }
      // The phases, in order (the TTL of 6 s ends it; expiring_soon comes 3 s before).
      const order = ['created', 'starting', 'provisioning', 'started', 'expiring_soon', 'stopping', 'expired'];
      expect(events.filter((event) => order.includes(event))).toEqual(order);
      // Every start-up phase comes before `started`, none after.
      const every = [...buffer.matchAll(/^event: (\S+)$/gm)].map((match) => match[1]);
      expect(every.lastIndexOf('provisioning')).toBeLessThan(every.indexOf('started'));

      const secret = hook.body.secret;
      await eventually(async () => received.some((delivery) => delivery.type === 'expired'), 20_000, 'the webhook for expired');
      const types = received.map((delivery) => delivery.type);
      expect(types).toEqual(expect.arrayContaining(['created', 'started', 'expiring_soon', 'stopping', 'expired']));
      // Every delivery is signed; the failed first one was retried.
      for (const delivery of received) expect(verifySignature(secret, delivery.body, delivery.signature)).toBe(true);
      expect(types.filter((type) => type === received[0].type).length).toBeGreaterThanOrEqual(2);
      expect(verifySignature('another secret', received[1].body, received[1].signature)).toBe(false);
    } finally {
      await new Promise((resolve) => receiver.close(resolve));
    }
  });

  it('rate-limits per key with 429 and Retry-After', async () => {
    const limited = await startBerth({ RATE_LIMIT_PER_MINUTE: '5' }, { api: true, worker: false });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await api(limited.url, 'GET', '/api/v1/sessions')).status);
      expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      expect(statuses.slice(5)).toEqual([429, 429]);
      // One budget per key for the whole API: another route is refused too.
      const refused = await api(limited.url, 'GET', '/api/v1/terminals');
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(refused.body).toMatchObject({ statusCode: 429, code: 'rate_limited' });
    } finally {
      await limited.close();
    }
  });
});

describe('global capacity: sessions wait in line and start as others end', () => {
  let berth: Berth;

  beforeAll(async () => {
    await resetDatabase();
    berth = await startBerth({ MAX_RUNNING_SESSIONS: '2' });
  });

  afterAll(async () => {
    await berth?.close();
  });

  it('queues in arrival order with positions, then admits as capacity frees', async () => {
    const running = [await api(berth.url, 'POST', '/api/v1/terminals'), await api(berth.url, 'POST', '/api/v1/terminals')];
    for (const s of running) await waitForStatus(berth.url, s.body.id, ['started']);
    const waiting = [];
    for (let i = 0; i < 3; i++) waiting.push(await api(berth.url, 'POST', '/api/v1/terminals'));
    await sleep(1500);
    const positions = [];
    for (const s of waiting) {
      const view = await api(berth.url, 'GET', `/api/v1/sessions/${s.body.id}`);
      expect(view.body.status).toBe('pending');
      positions.push(view.body.queue_position);
    }
    expect(positions).toEqual([1, 2, 3]);
    const audit = await api(berth.url, 'GET', `/api/v1/sessions/${waiting[0].body.id}/audit`);
    expect(audit.body.find((event: { type: string }) => event.type === 'queued')).toMatchObject({ data: { position: 1 } });

    // One ends: the first in line starts (promptly: woken, not waiting for a poll), the others move up.
    await api(berth.url, 'DELETE', `/api/v1/sessions/${running[0].body.id}`);
    await waitForStatus(berth.url, waiting[0].body.id, ['started'], 10_000);
    expect((await api(berth.url, 'GET', `/api/v1/sessions/${waiting[1].body.id}`)).body).toMatchObject({ status: 'pending', queue_position: 1 });
    await api(berth.url, 'DELETE', `/api/v1/sessions/${running[1].body.id}`);
    await waitForStatus(berth.url, waiting[1].body.id, ['started'], 10_000);
    expect((await api(berth.url, 'GET', `/api/v1/sessions/${waiting[2].body.id}`)).body).toMatchObject({ status: 'pending', queue_position: 1 });
  });
});
