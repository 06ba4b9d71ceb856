/// <reference lib="dom" />
import { once } from 'node:events';
import { Server, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import { SessionJobs } from '../src/provisioning/session-jobs.service';
import { poolSecret, upstreamSecret } from '../src/sessions/session-secrets';
import {
  Berth,
  api,
  containersOf,
  docker,
  eventually,
  freePort,
  httpRequest,
  resetDatabase,
  sql,
  startBerth,
  waitForStatus,
} from './support/berth-harness';
import { as, tenantWithKey } from './support/tenants';
import { runInTerminal } from './support/terminal-client';
import { run } from './support/processes';

interface PoolVariant {
  variant: string;
  size: number;
  warm: number;
  warming: number;
}

async function pool(base: string, variant = 'terminal'): Promise<PoolVariant> {
  const response = await api(base, 'GET', '/api/v1/pool');
  expect(response.status).toBe(200);
  return (response.body.variants as PoolVariant[]).find((entry) => entry.variant === variant)!;
}

async function poolWarm(base: string, warm: number, variant = 'terminal', timeoutMs = 30_000): Promise<void> {
  await eventually(async () => (await pool(base, variant)).warm === warm, timeoutMs, `${warm} warm ${variant} containers`);
}

async function warmIds(variant = 'terminal'): Promise<string[]> {
  const rows = await sql<{ id: string }>(`SELECT id FROM sessions WHERE status = 'warm' AND pool_variant = $1 ORDER BY created_at, id`, [variant]);
  return rows.map((row) => row.id);
}

/** The agent's own answer to a secret, straight to the container (what only Berth can do). */
async function agentHealth(sessionId: string, secret: string): Promise<{ status: number; body: any }> {
  const [row] = await sql<{ upstream_url: string }>(`SELECT upstream_url FROM sessions WHERE id = $1`, [sessionId]);
  const response = await httpRequest(`${row.upstream_url}/.berth/health`, { headers: { 'x-berth-secret': secret } });
  let body: unknown = response.body;
  try {
    body = JSON.parse(response.body);
  } catch {
    // not JSON
  }
  return { status: response.status, body };
}

/** A second API process, built from dist/ like production, on the same database, Redis and engine. */
async function spawnApi(env: Record<string, string>): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const { child, output } = run('main.js', { HOST: '127.0.0.1', PORT: String(port), PUBLIC_URL: url, LOG_LEVEL: 'warn', ...env });
  await eventually(async () => (await fetch(`${url}/health`).catch(() => null))?.ok, 20_000, `API process on ${port}`).catch((error: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${error.message}; it printed: ${output().slice(-2000)}`);
  });
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

describe('warm pool (real Postgres, Redis, Docker, two API processes)', () => {
  let berth: Berth;

  beforeAll(async () => {
    await resetDatabase();
    berth = await startBerth({ POOL_TERMINALS: '3' });
  });

  afterAll(async () => {
    await berth?.close();
  });

  it('fills the pool, hands a launch a started terminal in its own POST, binds it, and refills', async () => {
    await poolWarm(berth.url, 3);
    const before = await warmIds();
    // Unbound containers: reachable only with the pool secret, and bound to no one.
    const unbound = await agentHealth(before[0], poolSecret(berth.config, before[0]));
    expect(unbound).toMatchObject({ status: 200, body: { ready: true, bound: false, session_id: null } });

    const created = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'ann' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: 'started', owner: 'ann' });
    const { id, access_token: token, path_url: pathUrl } = created.body;
    // The oldest warm container became the session (its row, its id, its container).
    expect(id).toBe(before[0]);
    expect(created.body.container_name).toBe(`${berth.instance}-terminal-${id}`);
    expect(new Date(created.body.expires_at).getTime() - new Date(created.body.created_at).getTime()).toBe(24 * 3600 * 1000);

    // Claimed: the pool secret opens it no more; only the session's secret, as this session.
    expect((await agentHealth(id, poolSecret(berth.config, id))).status).toBe(401);
    expect(await agentHealth(id, upstreamSecret(berth.config, id))).toMatchObject({ status: 200, body: { bound: true, session_id: id } });
    // A second bind with the pool secret is refused before it reaches the agent's bind logic.
    const [row] = await sql<{ upstream_url: string }>(`SELECT upstream_url FROM sessions WHERE id = $1`, [id]);
    const rebind = await httpRequest(`${row.upstream_url}/.berth/bind`, {
      method: 'POST',
      headers: { 'x-berth-secret': poolSecret(berth.config, id), 'content-type': 'application/json' },
      body: JSON.stringify({ session_id: id, secret_sha256: '0'.repeat(64), callback_url: 'http://127.0.0.1:1', callback_token: 'x', options: {} }),
    });
    expect(rebind.status).toBe(401);

    // Users reach it through the gateway with their token, and only with it.
    await runInTerminal(pathUrl, token, 'echo $((6*7))', '42');
    expect((await httpRequest(pathUrl)).status).toBe(401);

    // Its audit trail starts at the claim, and says where it came from.
    const events = await api(berth.url, 'GET', `/api/v1/sessions/${id}/audit`);
    expect(events.body.map((event: { type: string }) => event.type).slice(0, 2)).toEqual(['created', 'started']);
    expect(events.body[0].data).toMatchObject({ pool: 'terminal', owner: 'ann' });

    // The pool refills behind the claim.
    await poolWarm(berth.url, 3);
    const after = await warmIds();
    expect(after).not.toContain(id);
    expect(after).toEqual(expect.arrayContaining(before.slice(1)));

    // A claimed session ends like any other: its container goes, and it does not come back to the pool.
    expect((await api(berth.url, 'DELETE', `/api/v1/sessions/${id}`)).status).toBe(200);
    await waitForStatus(berth.url, id, ['stopped']);
    expect(await containersOf(berth.instance, id)).toHaveLength(0);
  });

  it('takes the cold path, transparently, for a workspace and when the pool runs dry', async () => {
    await poolWarm(berth.url, 3);
    const withWorkspace = await api(berth.url, 'POST', '/api/v1/terminals', { owner: 'bob', workspace: 'proj' });
    expect(withWorkspace.status).toBe(202);
    expect(withWorkspace.body.status).toBe('pending');
    const started = await waitForStatus(berth.url, withWorkspace.body.id, ['started', 'failed']);
    expect(started.status).toBe('started');
    expect((await sql(`SELECT pool_variant FROM sessions WHERE id = $1`, [started.id]))[0].pool_variant).toBeNull();

    // Five launches against three warm containers: three are started at once, two start cold; all run.
    const launches = await Promise.all(Array.from({ length: 5 }, () => api(berth.url, 'POST', '/api/v1/terminals', {})));
    expect(launches.map((launch) => launch.status).sort()).toEqual([201, 201, 201, 202, 202]);
    const ids = launches.map((launch) => launch.body.id as string);
    for (const launch of launches) {
      const running = await waitForStatus(berth.url, launch.body.id, ['started', 'failed']);
      expect(running.status).toBe('started');
      await runInTerminal(running.path_url, launch.body.access_token, `echo ${launch.body.id.slice(0, 8)}`, launch.body.id.slice(0, 8));
    }
    await Promise.all([started.id, ...ids].map((id) => api(berth.url, 'DELETE', `/api/v1/sessions/${id}`)));
  });

  it('never hands one container to two launches, across two API processes', async () => {
    await poolWarm(berth.url, 3);
    // A second API process (no worker) on the same database and queues.
    const other = await spawnApi({ QUEUE_PREFIX: berth.config.redis.queuePrefix, BERTH_INSTANCE: berth.instance, POOL_TERMINALS: '3' });
    try {
      const warm = await warmIds();
      const launches = await Promise.all(
        Array.from({ length: 8 }, (_, i) => api(i % 2 ? other.url : berth.url, 'POST', '/api/v1/terminals', { owner: `racer-${i}` })),
      );
      expect(launches.every((launch) => launch.status === 201 || launch.status === 202)).toBe(true);
      const fromPool = launches.filter((launch) => launch.status === 201).map((launch) => launch.body.id as string);
      // Every warm container went to exactly one launch (the claim is one statement with SKIP LOCKED).
      expect(fromPool.length).toBeGreaterThanOrEqual(1);
      expect(fromPool.length).toBeLessThanOrEqual(warm.length + 3);
      expect(new Set(fromPool).size).toBe(fromPool.length);
      const ids = launches.map((launch) => launch.body.id as string);
      expect(new Set(ids).size).toBe(8);
      for (const id of ids) expect((await waitForStatus(berth.url, id, ['started', 'failed'])).status).toBe('started');
      // Each session has a container of its own, bound to it and to no other session.
      const rows = await sql<{ id: string; container_id: string; owner: string }>(`SELECT id, container_id, owner FROM sessions WHERE id = ANY($1::uuid[])`, [ids]);
      expect(new Set(rows.map((row) => row.container_id)).size).toBe(8);
      for (const id of ids) {
        expect(await agentHealth(id, upstreamSecret(berth.config, id))).toMatchObject({ status: 200, body: { bound: true, session_id: id } });
        expect((await containersOf(berth.instance, id)).length).toBe(1);
      }
      expect(new Set(rows.map((row) => row.owner)).size).toBe(8);
      await Promise.all(ids.map((id) => api(berth.url, 'DELETE', `/api/v1/sessions/${id}`)));
    } finally {
      await other.stop();
    }
  });

  it('starts a session cold when its claimed container cannot be bound (unreachable, or its API process died)', async () => {
    await poolWarm(berth.url, 3);
    // The oldest warm container stops answering behind Berth's back (hung, or dead an instant
    // before the claim: a container that exits is otherwise failed at once through the engine's
    // event stream, see the next test): the next launch claims it, the bind fails, and the launch
    // goes on as a cold start of the same session (same id, same token).
    const [doomed] = await warmIds();
    await sql(`UPDATE sessions SET upstream_url = 'http://127.0.0.1:9' WHERE id = $1`, [doomed]);
    const created = await api(berth.url, 'POST', '/api/v1/terminals', {});
    expect(created.body.id).toBe(doomed);
    expect(created.status).toBe(202);
    expect(created.body.status).toBe('starting');
    const started = await waitForStatus(berth.url, doomed, ['started', 'failed']);
    expect(started.status).toBe('started');
    await runInTerminal(started.path_url, created.body.access_token, 'echo cold', 'cold');
    const events = (await api(berth.url, 'GET', `/api/v1/sessions/${doomed}/audit`)).body;
    expect(events.find((event: { type: string; data: { phase?: string } }) => event.data.phase === 'cold-start')).toBeDefined();

    // An API process claims a container and dies before binding it: the worker finishes the bind.
    await poolWarm(berth.url, 3);
    const [orphan] = await warmIds();
    await sql(
      `WITH claimed AS (
         UPDATE sessions SET tenant_id = (SELECT id FROM tenants WHERE name = 'default'), status = 'starting', admitted_at = now(), created_at = now()
         WHERE id = $1 RETURNING id)
       SELECT id FROM claimed`,
      [orphan],
    );
    await berth.app.get(SessionJobs).provision({ sessionId: orphan });
    expect((await waitForStatus(berth.url, orphan, ['started', 'failed'])).status).toBe('started');
    expect(await agentHealth(orphan, upstreamSecret(berth.config, orphan))).toMatchObject({ status: 200, body: { bound: true, session_id: orphan } });
    await Promise.all([doomed, orphan].map((id) => api(berth.url, 'DELETE', `/api/v1/sessions/${id}`)));
  });

  it('fails a warm container that dies behind its back at once (the engine event stream), and refills', async () => {
    await poolWarm(berth.url, 3);
    const [dying] = await warmIds();
    await docker.getContainer(`${berth.instance}-terminal-${dying}`).kill();
    // No sweep runs in this window: the worker hears the engine's `die` event.
    await eventually(async () => (await sql<{ status: string }>(`SELECT status FROM sessions WHERE id = $1`, [dying]))[0]?.status === 'failed', 5_000, 'the dead warm container to be failed');
    expect(await warmIds()).not.toContain(dying);
    await poolWarm(berth.url, 3);
    const launched = await api(berth.url, 'POST', '/api/v1/terminals', {});
    expect(launched.status).toBe(201);
    expect(launched.body.id).not.toBe(dying);
    await api(berth.url, 'DELETE', `/api/v1/sessions/${launched.body.id}`);
  });

  it('never counts toward a tenant quota', async () => {
    await poolWarm(berth.url, 3);
    // A tenant limited to one live session: the pool's three containers do not count against it.
    const tenant = await tenantWithKey(berth.url, 'pool-quota', { max_sessions: 1 });
    const first = await api(berth.url, 'POST', '/api/v1/terminals', {}, as(tenant.key));
    expect(first.status).toBe(201);
    const second = await api(berth.url, 'POST', '/api/v1/terminals', {}, as(tenant.key));
    expect(second.status).toBe(429);
    await api(berth.url, 'DELETE', `/api/v1/sessions/${first.body.id}`, undefined, as(tenant.key));
    await eventually(async () => (await api(berth.url, 'GET', `/api/v1/sessions/${first.body.id}`, undefined, as(tenant.key))).body.status === 'stopped', 20_000, 'stopped');
  });
});

describe('warm pool with a maximum age', () => {
  let berth: Berth;

  beforeAll(async () => {
    await resetDatabase();
    // Pool containers live 3 s.
    berth = await startBerth({ POOL_TERMINALS: '2', POOL_MAX_AGE_MINUTES: '0.05' });
  });

  afterAll(async () => {
    await berth?.close();
  });

  it('replaces containers older than the maximum age', async () => {
    await poolWarm(berth.url, 2);
    const first = await warmIds();
    await eventually(async () => {
      const now = await warmIds();
      return now.length === 2 && now.every((id) => !first.includes(id));
    }, 30_000, 'a fresh pool');
    const retired = await sql<{ status: string; end_reason: string }>(`SELECT status, end_reason FROM sessions WHERE id = ANY($1::uuid[])`, [first]);
    expect(retired.every((row) => row.end_reason === 'retired')).toBe(true);
    await eventually(async () => (await containersOf(berth.instance)).filter((c) => first.some((id) => c.Names[0].includes(id))).length === 0, 20_000, 'retired containers gone');
  });

});

describe('warm pool under a capacity limit', () => {
  let berth: Berth;

  beforeAll(async () => {
    await resetDatabase();
    // Three slots in all; the pool wants two of them.
    berth = await startBerth({ POOL_TERMINALS: '2', MAX_RUNNING_SESSIONS: '3' });
  });

  afterAll(async () => {
    await berth?.close();
  });

  it('gives its slots to launches waiting for capacity', async () => {
    await poolWarm(berth.url, 2);
    // Workspaces take the cold path. One slot is free; the second and third launch need the pool's.
    const launches = [];
    for (const name of ['w1', 'w2', 'w3']) launches.push(await api(berth.url, 'POST', '/api/v1/terminals', { workspace: name }));
    for (const launch of launches) {
      expect(launch.status).toBe(202);
      expect((await waitForStatus(berth.url, launch.body.id, ['started', 'failed'], 30_000)).status).toBe('started');
    }
    // Capacity is never exceeded: three sessions run, the pool is empty until one ends.
    const running = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM sessions WHERE status IN ('warming', 'warm', 'starting', 'started', 'stopping')`);
    expect(running[0].n).toBe(3);
    expect((await pool(berth.url)).warm).toBe(0);
    await api(berth.url, 'DELETE', `/api/v1/sessions/${launches[0].body.id}`);
    await poolWarm(berth.url, 1);
    await Promise.all(launches.slice(1).map((launch) => api(berth.url, 'DELETE', `/api/v1/sessions/${launch.body.id}`)));
    await poolWarm(berth.url, 2);
  });
});

describe('warm pool of browsers (headless and headful)', () => {
  let berth: Berth;
  let site: Server;
  let siteUrl: string;

  beforeAll(async () => {
    await resetDatabase();
    site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>pool site</title><body>hi</body>'));
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
    berth = await startBerth({ POOL_BROWSERS_HEADLESS: '1', POOL_BROWSERS_HEADFUL: '1', START_URL_ALLOW: '127.0.0.1', BROWSER_TTL_HOURS: '1' });
  });

  afterAll(async () => {
    await berth?.close();
    await new Promise((resolve) => site?.close(resolve));
  });

  it('hands out started browsers with the asked options; other launches start cold', async () => {
    await poolWarm(berth.url, 1, 'browser-headless', 60_000);
    await poolWarm(berth.url, 1, 'browser-headful', 60_000);

    // Headless at any viewport: the window is resized and the start URL opened at claim time.
    const headless = await api(berth.url, 'POST', '/api/v1/browsers', { headless: true, viewport: { width: 1024, height: 700 }, start_url: siteUrl });
    expect(headless.status).toBe(201);
    expect(headless.body).toMatchObject({ status: 'started', live_view_url: null });
    expect((await agentHealth(headless.body.id, poolSecret(berth.config, headless.body.id))).status).toBe(401);
    const browser = await chromium.connectOverCDP(headless.body.cdp_url);
    try {
      const page = browser.contexts()[0].pages().find((candidate) => candidate.url() === siteUrl);
      expect(page).toBeDefined();
      expect(await page!.title()).toBe('pool site');
      expect(await page!.evaluate(() => [window.outerWidth, window.outerHeight])).toEqual([1024, 700]);
    } finally {
      await browser.close();
    }

    // Headful at the default screen: its live view is there at once.
    const headful = await api(berth.url, 'POST', '/api/v1/browsers', {});
    expect(headful.status).toBe(201);
    expect(headful.body.live_view_url).toMatch(/\?token=/);
    const host = `${headful.body.id}.localhost:${new URL(berth.url).port}`;
    expect((await httpRequest(`${berth.url}/?token=${headful.body.access_token}`, { host })).status).toBe(303);

    // A headful screen of another size, and a persistent profile, need a container of their own.
    const otherScreen = await api(berth.url, 'POST', '/api/v1/browsers', { viewport: { width: 800, height: 600 } });
    const withProfile = await api(berth.url, 'POST', '/api/v1/browsers', { headless: true, profile: 'kept' });
    expect([otherScreen.status, withProfile.status]).toEqual([202, 202]);
    for (const id of [otherScreen.body.id, withProfile.body.id]) {
      expect((await waitForStatus(berth.url, id, ['started', 'failed'], 60_000)).status).toBe('started');
      expect((await sql(`SELECT pool_variant FROM sessions WHERE id = $1`, [id]))[0].pool_variant).toBeNull();
    }
    await Promise.all([headless, headful, otherScreen, withProfile].map((launch) => api(berth.url, 'DELETE', `/api/v1/browsers/${launch.body.id}`)));
  });
});
