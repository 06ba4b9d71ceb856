import { getQueueToken } from '@nestjs/bullmq';
import { Queue } from 'bullmq';
import { JobName, QueueName, jobId } from '../src/provisioning/jobs';
import { Berth, api, containersOf, eventually, httpRequest, resetDatabase, sql, startBerth, waitForStatus } from './support/berth-harness';
import { runInTerminal } from './support/terminal-client';

describe('terminal session lifecycle (real Postgres, Redis, Docker)', () => {
  let berth: Berth;

  beforeAll(async () => {
    await resetDatabase();
    berth = await startBerth();
  });

  afterAll(async () => {
    await berth?.close();
  });

  it('creates a terminal, serves a real shell over WebSocket, and deletes it', async () => {
    const created = await api(berth.url, 'POST', '/api/v1/terminals');
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'pending', tunnel_url: null });
    expect(created.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Date(created.body.expires_at).getTime() - new Date(created.body.created_at).getTime()).toBe(24 * 3600 * 1000);
    const { id, access_token: token } = created.body;
    expect(token).toEqual(expect.any(String));

    const started = await waitForStatus(berth.url, id, ['started', 'failed']);
    expect(started).toMatchObject({ status: 'started', error_message: null });
    // Both URLs are the gateway's, on PUBLIC_URL's port: never the container's own address.
    const port = new URL(berth.url).port;
    expect(started.tunnel_url).toBe(`http://${id}.localhost:${port}/`);
    expect(started.path_url).toBe(`${berth.url}/s/${id}/`);
    // Where the container is was recorded before it could call back: never `started` without it.
    expect(started.container_name).toBe(`${berth.instance}-terminal-${id}`);
    expect(started.container_id).toEqual(expect.any(String));
    expect(started.started_at).not.toBeNull();
    // The access token is never stored or shown again.
    expect(started.access_token).toBeUndefined();

    const containers = await containersOf(berth.instance, id);
    expect(containers).toHaveLength(1);
    expect(containers[0].Id).toBe(started.container_id);

    // The terminal refuses strangers and serves the page to the token holder, on its own origin.
    const host = `${id}.localhost:${port}`;
    const anonymous = await httpRequest(`${berth.url}/`, { host });
    expect(anonymous.status).toBe(401);
    const withToken = await httpRequest(`${berth.url}/?token=${token}`, { host });
    expect(withToken.status).toBe(303);
    const cookie = String(withToken.headers['set-cookie']);
    expect(cookie).toMatch(/HttpOnly/i);
    const page = await httpRequest(`${berth.url}/`, { host, headers: { cookie: cookie.split(';')[0] } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('xterm');

    // The container's own port answers nobody without the session's upstream secret.
    const [{ host_port: hostPort }] = await sql<{ host_port: number }>('SELECT host_port FROM sessions WHERE id = $1', [id]);
    const attempts: Record<string, string>[] = [{}, { authorization: `Bearer ${token}` }, { 'x-berth-secret': token }];
    for (const credentials of attempts) {
      expect((await httpRequest(`http://127.0.0.1:${hostPort}/`, { headers: credentials })).status).toBe(401);
    }

    const marker = `berth-${Math.floor(Math.random() * 1e9)}`;
    await runInTerminal(started.path_url, token, `echo ${marker}`, marker);
    // The user's shell cannot read the container's secrets from any process.
    await runInTerminal(
      started.path_url,
      token,
      `echo leaks-$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c '^BERTH_')`,
      'leaks-0',
    );
    // Orphans re-parented to the session agent (PID 1) are reaped, not left as zombies.
    await runInTerminal(started.path_url, token, `bash -c 'sleep 0.2 &'; sleep 0.6; echo zombies-$(ps -eo stat= | grep -c '^Z')`, 'zombies-0');
    // A wrong token gets no shell.
    await expect(runInTerminal(started.path_url, 'not-the-token-but-long-enough-to-look-like-one', 'echo x', 'x')).rejects.toThrow(/401/);

    // An honest stop: `stopping` while the container goes, `stopped` once it is gone.
    const deleted = await api(berth.url, 'DELETE', `/api/v1/terminals/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ status: 'stopping', end_reason: 'deleted', tunnel_url: null });
    expect(deleted.body.deleted_at).not.toBeNull();
    const settled = await api(berth.url, 'GET', `/api/v1/terminals/${id}?wait_seconds=15`);
    expect(settled.body.status).toBe('stopped');
    expect(await containersOf(berth.instance, id)).toHaveLength(0);
    // Its port is free for the next session once the container is gone.
    await eventually(async () => (await sql('SELECT host_port FROM sessions WHERE id = $1', [id]))[0].host_port === null, 5_000, 'port release');
    // Its expiry job, now pointless, is gone from Redis too.
    const lifecycle = berth.app.get<Queue>(getQueueToken(QueueName.Lifecycle));
    await eventually(async () => !(await lifecycle.getJob(jobId(JobName.ExpireSession, id))), 5_000, 'expiry job removal');
    // The audit trail tells the story, and who did what.
    const audit = await api(berth.url, 'GET', `/api/v1/sessions/${id}/audit`);
    expect(audit.body.map((event: { type: string }) => event.type)).toEqual(
      expect.arrayContaining(['created', 'starting', 'provisioning', 'started', 'stopping', 'stopped']),
    );
    expect(audit.body.find((event: { type: string }) => event.type === 'stopping')).toMatchObject({ actor: 'admin', data: { reason: 'deleted' } });

    // Idempotent, and a stopped session stays stopped.
    const again = await api(berth.url, 'DELETE', `/api/v1/terminals/${id}`);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('stopped');
    expect((await api(berth.url, 'GET', `/api/v1/terminals/${id}`)).body.status).toBe('stopped');
  });

  it('answers a waiting GET as soon as the session starts, without polling', async () => {
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    const asked = Date.now();
    const waited = await api(berth.url, 'GET', `/api/v1/terminals/${body.id}?wait_seconds=20`);
    expect(waited.status).toBe(200);
    expect(waited.body.status).toBe('started');
    expect(waited.body.tunnel_url).toBe(`http://${body.id}.localhost:${new URL(berth.url).port}/`);
    // Answered when the callback landed, not at the end of the wait.
    expect(Date.now() - asked).toBeLessThan(10_000);
    // A settled session is answered at once.
    const again = Date.now();
    expect((await api(berth.url, 'GET', `/api/v1/terminals/${body.id}?wait_seconds=20`)).body.status).toBe('started');
    expect(Date.now() - again).toBeLessThan(1000);
    await api(berth.url, 'DELETE', `/api/v1/terminals/${body.id}`);
    expect((await api(berth.url, 'GET', `/api/v1/terminals/${body.id}?wait_seconds=61`)).status).toBe(400);
  });

  it('lists terminals newest first, filtered by status and paginated', async () => {
    const a = await api(berth.url, 'POST', '/api/v1/terminals', { ttl_seconds: 600 });
    const b = await api(berth.url, 'POST', '/api/v1/terminals', { ttl_seconds: 600 });
    await waitForStatus(berth.url, a.body.id, ['started']);
    await waitForStatus(berth.url, b.body.id, ['started']);
    await api(berth.url, 'DELETE', `/api/v1/terminals/${a.body.id}`);
    await waitForStatus(berth.url, a.body.id, ['stopped']);

    const started = await api(berth.url, 'GET', '/api/v1/terminals?status=started');
    expect(started.status).toBe(200);
    expect(started.body.items.map((s: { id: string }) => s.id)).toEqual([b.body.id]);
    expect(started.body.total).toBe(1);

    const page = await api(berth.url, 'GET', '/api/v1/terminals?limit=1&offset=0');
    expect(page.body).toMatchObject({ limit: 1, offset: 0 });
    expect(page.body.items).toHaveLength(1);
    expect(page.body.total).toBeGreaterThanOrEqual(3);
    expect(page.body.items[0].id).toBe(b.body.id);
    const next = await api(berth.url, 'GET', '/api/v1/terminals?limit=1&offset=1');
    expect(next.body.items[0].id).toBe(a.body.id);
  });

  it('documents every route in the OpenAPI document and serves Swagger UI', async () => {
    const spec = await api(berth.url, 'GET', '/docs/openapi.json');
    expect(spec.status).toBe(200);
    expect(Object.keys(spec.body.paths).sort()).toEqual(
      [
        '/api/v1/browsers',
        '/api/v1/browsers/{id}',
        '/api/v1/browsers/{id}/downloads',
        '/api/v1/browsers/{id}/downloads/{name}',
        '/api/v1/browsers/{id}/screenshot',
        '/api/v1/browsers/{id}/uploads',
        '/api/v1/callbacks/status',
        '/api/v1/callbacks/tunnel',
        '/api/v1/pool',
        '/api/v1/profiles',
        '/api/v1/profiles/{id}',
        '/api/v1/sessions',
        '/api/v1/sessions/{id}',
        '/api/v1/sessions/{id}/audit',
        '/api/v1/sessions/{id}/events',
        '/api/v1/sessions/{id}/extend',
        '/api/v1/sessions/{id}/heartbeat',
        '/api/v1/sessions/{id}/lifecycle',
        '/api/v1/tenants',
        '/api/v1/tenants/{id}',
        '/api/v1/tenants/{id}/keys',
        '/api/v1/tenants/{id}/keys/{keyId}',
        '/api/v1/workspaces',
        '/api/v1/workspaces/{id}',
        '/api/v1/terminals',
        '/api/v1/terminals/{id}',
        '/api/v1/webhooks',
        '/api/v1/webhooks/{id}',
        '/health',
      ].sort(),
    );
    expect(spec.body.components.schemas.SessionResponse.properties.status.enum).toEqual([
      'pending',
      'starting',
      'started',
      'stopping',
      'stopped',
      'expired',
      'failed',
    ]);
    // Every schema is named for what it is (no anonymous "Object").
    expect(Object.keys(spec.body.components.schemas)).not.toContain('Object');
    const ui = await fetch(`${berth.url}/docs`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger-ui');
  });

  it('reports database, Redis and platform health', async () => {
    const health = await api(berth.url, 'GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({
      status: 'ok',
      checks: { database: { status: 'up' }, redis: { status: 'up' }, platform: { name: 'docker', status: 'up' } },
    });
  });
});
