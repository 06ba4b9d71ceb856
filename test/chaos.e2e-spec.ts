import { Queue } from 'bullmq';
import { mkdirSync, rmSync } from 'node:fs';
import { CLEANUP_SCHEDULER_ID, QueueName } from '../src/provisioning/jobs';
import { LABELS } from '../src/platform/container-platform';
import { CHAOS_INSTANCE, CHAOS_QUEUE_PREFIX, TERMINAL_IMAGE } from './chaos/berth-cluster';
import { CheckOptions, Figures, computeFigures, nonZero } from './chaos/checker';
import { ChaosEnvironment } from './chaos/environment';
import { HealthWatcher, TrackedSession } from './chaos/load-driver';
import { sleep, until } from './chaos/util';

/**
 * The fast subset of the chaos suite (the long run is `npm run chaos`,
 * test/chaos/run.ts). Real processes: the built API and worker entry points,
 * two of each, against a private Postgres, Redis and Docker engine that the
 * tests kill, flush and restart (never the machine's shared ones). Each test
 * ends by letting everything settle and checking the figures the long run
 * reports, computed from Postgres, the engine's event stream and every HTTP
 * answer: nothing lost, nothing kept past its deadline, no duplicated or
 * orphaned container, no 500.
 */

const CHECK: CheckOptions & { settleTimeoutMs: number } = {
  startBoundMs: 30_000,
  deadlineToleranceMs: 5_000,
  explainFailureMs: 20_000,
  settleTimeoutMs: 30_000,
};

describe('chaos: crashes and restarts lose nothing (private Postgres, Redis, Docker engine; 2 APIs, 2 workers)', () => {
  let env: ChaosEnvironment;
  const logs = `/var/tmp/berth-chaos-e2e-${process.pid}`;
  let failed = false;

  beforeAll(async () => {
    mkdirSync(logs, { recursive: true });
    env = await ChaosEnvironment.start({
      logs,
      // The scheduled sweep only every minute: what these tests see settled must be settled by
      // the mechanism meant for it (timers, reconciliation, the platform watch), not by a sweep
      // that happened to run. (The long run, npm run chaos, uses 1 minute too.)
      cleanupIntervalMinutes: 1,
      startTimeoutSeconds: 30,
    });
  });

  afterAll(async () => {
    await env?.close();
    if (failed) console.log(`chaos e2e: logs of the failed run kept in ${logs}`);
    else rmSync(logs, { recursive: true, force: true });
  });

  /** Runs a test body, remembering a failure so the logs are kept. */
  const track = (body: () => Promise<void>) => async () => {
    try {
      await body();
    } catch (error) {
      failed = true;
      throw error;
    }
  };

  async function statuses(ids: string[]): Promise<Map<string, string>> {
    const rows = await env.db.query<{ id: string; status: string }>(`SELECT id, status FROM sessions WHERE id = ANY($1::uuid[])`, [ids]);
    return new Map(rows.map((row) => [row.id, row.status]));
  }

  async function waitFor(ids: string[], wanted: string[], timeoutMs: number, what: string): Promise<Map<string, string>> {
    return until(async () => {
      const current = await statuses(ids);
      return ids.every((id) => wanted.includes(current.get(id) ?? '')) ? current : null;
    }, timeoutMs, what, 100).catch(async (error: Error) => {
      throw new Error(`${error.message}; now: ${JSON.stringify(Object.fromEntries(await statuses(ids)))}`);
    });
  }

  function containersOf(id: string) {
    return env.observer.bySession().get(id) ?? [];
  }

  async function runningContainers(id: string) {
    return (await env.observer.current()).filter((c) => c.Labels[LABELS.sessionId] === id && c.State === 'running');
  }

  async function deleteAll(sessions: TrackedSession[]): Promise<void> {
    const driver = env.driver();
    await Promise.all(sessions.map((session) => driver.remove(session)));
  }

  function expectAllZero(figures: Figures): void {
    const problems = nonZero(figures);
    if (Object.keys(problems).length) {
      throw new Error(`non-zero figures ${JSON.stringify(problems)}: ${JSON.stringify(figures, null, 1).slice(0, 6000)}`);
    }
  }

  it('the checker is not blind: two containers for one session are a duplicate, a container without a session an orphan', track(async () => {
    const since = Date.now();
    const fake = '00000000-0000-4000-8000-00000000c0de';
    const docker = env.services.docker.docker;
    const labels = { [LABELS.managedBy]: 'berth', [LABELS.instance]: CHAOS_INSTANCE, [LABELS.sessionId]: fake, [LABELS.kind]: 'terminal' };
    const planted = [];
    for (let i = 0; i < 2; i++) {
      planted.push(await docker.createContainer({ Image: TERMINAL_IMAGE, Entrypoint: ['sleep', '60'], Labels: labels, HostConfig: { NetworkMode: 'host' } }));
    }
    try {
      await until(async () => env.observer.duplicates.some((d) => d.sessionId === fake), 5000, 'the observer to see the duplicate');
      const figures = await computeFigures({
        db: env.db, observer: env.observer, client: env.client, cluster: env.cluster, since, windows: [], settledAfterMs: 0, options: CHECK,
      });
      expect(figures.duplicates.details.map((d) => d.sessionId)).toContain(fake);
      expect(figures.orphans.details.filter((o) => o.sessionId === fake)).toHaveLength(2);
      expect(nonZero(figures)).toEqual(expect.objectContaining({ duplicates: 1, orphans: 2 }));
    } finally {
      for (const container of planted) await container.remove({ force: true });
    }
    // Left alone, Berth's own sweep would reap them too; removed here so the next tests start clean.
    await until(async () => (await env.observer.current()).length === 0, 5000, 'the planted containers to go');
  }));

  it('worker killed with SIGKILL mid-provision: every session still starts, one container each', track(async () => {
    const since = Date.now();
    const driver = env.driver();
    const launching = Promise.all(Array.from({ length: 8 }, () => driver.launch('delete', 300)));
    // Both workers die the moment a worker has taken a session on (starting): the others are mid-way too.
    const starting = async () =>
      (await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM sessions WHERE created_at >= $1 AND status = 'starting'`, [new Date(since)]))[0].n;
    await until(async () => (await starting()) > 0, 10_000, 'provisioning to begin', 5);
    await Promise.all(env.cluster.workers.map((worker) => ((worker.supervise = false), worker.kill('SIGKILL'))));
    // The test means something only if the kill caught provisioning half done: admitted, not started.
    expect(await starting()).toBeGreaterThan(0);
    const sessions = (await launching).filter((s): s is TrackedSession => !!s);
    expect(sessions).toHaveLength(8);

    for (const worker of env.cluster.workers) worker.supervise = true;
    await Promise.all(env.cluster.workers.map((worker) => worker.restart()));
    const ids = sessions.map((s) => s.id);
    // Jobs held by the dead workers come back once their locks lapse (WORKER_LOCKS: ~6-9 s).
    await waitFor(ids, ['started'], 30_000, 'every session to start after the workers were killed');
    for (const id of ids) {
      expect(containersOf(id)).toHaveLength(1);
      // The agent can call back before the engine has finished recording its start (the Docker
      // API's `start` still returning under load): its listing says `created` for a moment.
      await until(async () => ((await runningContainers(id)).length > 0 ? true : null), 5000, `the container of ${id} to be listed running`);
      expect(await runningContainers(id)).toHaveLength(1);
    }
    await deleteAll(sessions);
    const figures = await env.check(since, CHECK, driver);
    expect(figures.containersCreated).toBe(8);
    expectAllZero(figures);
  }));

  it('Redis flushed while sessions live: a session still expires on time, a pending one still starts, the sweep is scheduled again', track(async () => {
    const since = Date.now();
    const driver = env.driver();
    const lifecycle = new Queue(QueueName.Lifecycle, { connection: { url: env.services.redis.url }, prefix: CHAOS_QUEUE_PREFIX });
    try {
      expect(await lifecycle.getJobScheduler(CLEANUP_SCHEDULER_ID)).toBeTruthy();
      const expiring = (await driver.launch('expire', 9))!;
      await waitFor([expiring.id], ['started'], 15_000, 'the expiring session to start');

      // Workers frozen (alive, connections open): the pending session's job is queued, then flushed with everything else.
      for (const worker of env.cluster.workers) worker.child.freeze(true);
      let pending: TrackedSession;
      try {
        pending = (await driver.launch('delete', 300))!;
        expect((await statuses([pending.id])).get(pending.id)).toBe('pending');
        await env.chaos.flushRedis();
        expect(await lifecycle.getJobScheduler(CLEANUP_SCHEDULER_ID)).toBeFalsy();
        expect(await lifecycle.getJob(`expire-session-${expiring.id}`)).toBeFalsy();
      } finally {
        for (const worker of env.cluster.workers) worker.child.freeze(false);
      }
      const resumed = Date.now();

      // Postgres is the truth: the workers notice the missing schedule (checked every 3 s) and rebuild every job.
      await until(async () => !!(await lifecycle.getJobScheduler(CLEANUP_SCHEDULER_ID)), 8000, 'the sweep schedule to be back');
      await waitFor([pending.id], ['started'], 15_000, 'the pending session to start after the flush');
      expect(Date.now() - resumed).toBeLessThan(15_000);

      const [expired] = await waitFor([expiring.id], ['expired'], 20_000, 'the session to expire').then(() =>
        env.db.query<{ expires_at: Date; ended: Date }>(
          `SELECT s.expires_at, (SELECT min(created_at) FROM session_events e WHERE e.session_id = s.id AND e.type = 'stopping') AS ended
           FROM sessions s WHERE s.id = $1`,
          [expiring.id],
        ),
      );
      const lateMs = expired.ended.getTime() - expired.expires_at.getTime();
      expect(lateMs).toBeGreaterThanOrEqual(0);
      expect(lateMs).toBeLessThan(3000);

      await deleteAll([pending]);
      const figures = await env.check(since, CHECK, driver);
      expectAllZero(figures);
      expect(figures.sessions.expired).toBe(1);
    } finally {
      await lifecycle.close();
    }
  }));

  it('Postgres restarted under launches: 503 with Retry-After during the outage, health names it, every accepted session starts', track(async () => {
    const since = Date.now();
    const driver = env.driver();
    const health = new HealthWatcher(env.client, 250);
    health.start();
    const launches: Promise<TrackedSession | null>[] = [];
    let launching = true;
    const stream = (async () => {
      while (launching) {
        launches.push(driver.launch('delete', 300));
        await sleep(300);
      }
    })();
    try {
      await sleep(2000);
      const outage = await env.chaos.restartPostgres({ mode: 'fast', downMs: 4000 });
      await sleep(2000);
      launching = false;
      await stream;
      const sessions = (await Promise.all(launches)).filter((s): s is TrackedSession => !!s);
      expect(sessions).toHaveLength(launches.length);

      // Refused cleanly while it was down: 503, Retry-After, a message saying what is wrong.
      const refused = env.client.records.filter((r) => r.at >= outage.start && r.at <= outage.end && r.method === 'POST' && r.status === 503);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.filter((r) => !r.retryAfter)).toEqual([]);
      expect(refused[0].body).toMatch(/dependency_unavailable/);
      expect(env.client.serverErrors(since)).toEqual([]);
      // Health said which dependency was down, and recovered without a restart.
      const during = health.samples.filter((s) => s.at > outage.start + 500 && s.at < outage.end - 500);
      expect(during.some((s) => s.status === 503 && s.database === 'down' && s.redis === 'up')).toBe(true);
      await until(async () => {
        const recent = health.samples.filter((s) => s.at > Date.now() - 600);
        return recent.length >= 2 && recent.every((s) => s.status === 200);
      }, 15_000, 'health to be 200 again on both APIs');
      expect(env.cluster.exits().filter((exit) => exit.at >= since)).toEqual([]);

      const ids = sessions.map((s) => s.id);
      await waitFor(ids, ['started'], 30_000, 'every accepted session to start');
      for (const id of ids) expect(containersOf(id)).toHaveLength(1);
      await deleteAll(sessions);
    } finally {
      launching = false;
      await stream;
      await health.stop();
    }
    const figures = await env.check(since, CHECK, driver);
    expectAllZero(figures);
  }));

  it('two APIs and two workers, one of each killed mid-run: concurrent launches, deletes and expiries, no duplicates', track(async () => {
    const since = Date.now();
    const driver = env.driver({
      rate: 4,
      expireShare: 0.5,
      shortTtlSeconds: [3, 6],
      longTtlSeconds: 120,
      deleteAfterSeconds: [0, 4],
      keepShare: 0,
      keepSeconds: [0, 0],
      retryForMs: 30_000,
    });
    driver.start();
    await sleep(3500);
    await env.chaos.killTogether([env.cluster.apis[1], env.cluster.workers[1]], { downMs: 1500, midProvision: true });
    await sleep(3000);
    await driver.drain();
    const figures = await env.check(since, CHECK, driver);
    expectAllZero(figures);
    expect(figures.sessions.accepted).toBeGreaterThanOrEqual(20);
    expect(figures.sessions.expired).toBeGreaterThanOrEqual(3);
    expect(figures.sessions.stopped).toBeGreaterThanOrEqual(3);
    expect(figures.keptPastDeadline.deadlinesReached).toBe(figures.sessions.expired);
    // Any API serves any session: launches went to both, each delete to the other one.
    expect(new Set([...driver.sessions.values()].map((s) => s.launchApi)).size).toBe(2);
  }));

  it('Docker engine restarted: sessions whose containers it stopped are failed, nothing is started twice, new sessions start', track(async () => {
    const since = Date.now();
    const driver = env.driver();
    const before = (await Promise.all([1, 2, 3].map(() => driver.launch('delete', 300)))) as TrackedSession[];
    await waitFor(before.map((s) => s.id), ['started'], 15_000, 'the first sessions to start');
    const inFlight = (await Promise.all([1, 2, 3].map(() => driver.launch('delete', 300)))) as TrackedSession[];
    const restart = await env.chaos.restartDocker({ signal: 'SIGTERM', downMs: 1000 });
    const after = (await Promise.all([1, 2].map(() => driver.launch('delete', 300)))) as TrackedSession[];

    // Noticed by the workers' platform watch as soon as the engine answers again, not by the
    // next scheduled sweep (a minute away here, five by default).
    const ended = await waitFor(before.map((s) => s.id), ['failed'], 8_000, 'sessions whose containers the restart stopped to be failed');
    expect([...ended.values()]).toEqual(['failed', 'failed', 'failed']);
    const reasons = await env.db.query<{ error_message: string }>(`SELECT error_message FROM sessions WHERE id = ANY($1::uuid[])`, [before.map((s) => s.id)]);
    for (const { error_message } of reasons) expect(error_message).toMatch(/container exited|container disappeared/);
    await waitFor(after.map((s) => s.id), ['started'], 20_000, 'sessions created after the restart to start');
    await waitFor(inFlight.map((s) => s.id), ['started', 'failed'], 30_000, 'sessions in flight during the restart to settle');
    for (const session of [...before, ...inFlight, ...after]) {
      expect(env.observer.duplicates.filter((d) => d.sessionId === session.id)).toEqual([]);
      expect((await runningContainers(session.id)).length).toBeLessThanOrEqual(1);
    }
    for (const session of before) expect(containersOf(session.id)).toHaveLength(1);

    await deleteAll([...inFlight, ...after]);
    const figures = await env.check(since, CHECK, driver);
    expectAllZero(figures);
    expect(figures.failedByEngineRestart.count).toBeGreaterThanOrEqual(3);
    expect(restart.end).toBeGreaterThan(restart.start);
  }));
});
