import { getQueueToken } from '@nestjs/bullmq';
import { Queue } from 'bullmq';
import { JobName, QueueName, jobId } from '../src/provisioning/jobs';
import { CONTAINER_PLATFORM, ContainerPlatform } from '../src/platform/container-platform';
import { SessionProvisioner } from '../src/provisioning/session-provisioner.service';
import { Berth, api, containersOf, eventually, resetDatabase, sleep, sql, startBerth, waitForStatus } from './support/berth-harness';

describe('concurrency: duplicate delivery and DELETE racing provisioning', () => {
  const harnesses: Berth[] = [];

  beforeEach(async () => {
    await resetDatabase();
  });

  afterEach(async () => {
    while (harnesses.length) await harnesses.pop()!.close();
  });

  it('two workers processing the same job leave exactly one container and a consistent row', async () => {
    // API alone first, so the job waits in the queue and we can read its payload.
    const apiOnly = await startBerth({}, { api: true, worker: false });
    harnesses.push(apiOnly);
    const { body } = await api(apiOnly.url, 'POST', '/api/v1/terminals');
    const queue = apiOnly.app.get<Queue>(getQueueToken(QueueName.Provisioning));
    const job = await queue.getJob(jobId(JobName.ProvisionSession, body.id));
    expect(job?.data.sessionId).toBe(body.id);

    // Two workers on the same queue and install; each also runs the job by
    // hand, as a re-delivery after a stalled lock would.
    const shared = { QUEUE_PREFIX: apiOnly.config.redis.queuePrefix, BERTH_INSTANCE: apiOnly.instance, CALLBACK_URL: apiOnly.config.callbackUrl };
    const workerA = await startBerth(shared, { api: false, worker: true });
    const workerB = await startBerth(shared, { api: false, worker: true });
    harnesses.push(workerA, workerB);
    const outcomes = await Promise.all(
      [workerA, workerB, workerA, workerB].map((worker) => worker.app.get(SessionProvisioner).provision(body.id)),
    );
    expect(outcomes.filter((outcome) => !['started', 'not-live'].includes(outcome))).toEqual([]);

    const started = await waitForStatus(apiOnly.url, body.id, ['started', 'failed']);
    expect(started.status).toBe('started');
    const containers = await containersOf(apiOnly.instance, body.id);
    expect(containers).toHaveLength(1);
    expect(started.container_id).toBe(containers[0].Id);
    // And it stays that way once every worker has settled.
    await sleep(1000);
    expect(await containersOf(apiOnly.instance, body.id)).toHaveLength(1);
  });

  it.each([0, 20, 60, 120, 250, 500])('a DELETE %i ms after POST leaves no container and a stopped row', async (delayMs) => {
    const berth = await startBerth();
    harnesses.push(berth);
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    await sleep(delayMs);
    const deleted = await api(berth.url, 'DELETE', `/api/v1/terminals/${body.id}`);
    expect(deleted.body.status).toBe('stopping');

    await eventually(async () => (await containersOf(berth.instance, body.id)).length === 0, 15_000, 'no container');
    // Provisioning may still have been in flight: give it time to finish, then check again.
    await sleep(1500);
    expect(await containersOf(berth.instance, body.id)).toHaveLength(0);
    const row = await api(berth.url, 'GET', `/api/v1/terminals/${body.id}?wait_seconds=10`);
    expect(row.body.status).toBe('stopped');
    expect(row.body.deleted_at).not.toBeNull();
  });

  it('a DELETE landing between container creation and the record leaves nothing behind', async () => {
    const apiOnly = await startBerth({}, { api: true, worker: false });
    harnesses.push(apiOnly);
    const { body } = await api(apiOnly.url, 'POST', '/api/v1/terminals');
    const queue = apiOnly.app.get<Queue>(getQueueToken(QueueName.Provisioning));
    const job = await queue.getJob(jobId(JobName.ProvisionSession, body.id));
    const worker = await startBerth(
      { QUEUE_PREFIX: `${apiOnly.config.redis.queuePrefix}-idle`, BERTH_INSTANCE: apiOnly.instance, CALLBACK_URL: apiOnly.config.callbackUrl },
      { api: false, worker: true },
    );
    harnesses.push(worker);

    // Land the DELETE exactly in the window: the real Docker platform has created
    // and started the container, and the provisioner has not recorded it yet.
    const platform = worker.app.get<ContainerPlatform>(CONTAINER_PLATFORM);
    const realStart = platform.start.bind(platform);
    let deleted: { body: { status: string } } | undefined;
    platform.start = async (spec) => {
      const started = await realStart(spec);
      expect(await containersOf(apiOnly.instance, body.id)).toHaveLength(1);
      deleted = await api(apiOnly.url, 'DELETE', `/api/v1/terminals/${body.id}`);
      return started;
    };
    const outcome = await worker.app.get(SessionProvisioner).provision(body.id);
    expect(deleted?.body.status).toBe('stopping');
    expect(outcome).toBe('ended-meanwhile');
    await eventually(async () => (await containersOf(apiOnly.instance, body.id)).length === 0, 15_000, 'no container');
    // The provisioner removed what it made and completed the stop (no worker consumes this queue's teardown).
    expect((await api(apiOnly.url, 'GET', `/api/v1/terminals/${body.id}`)).body.status).toBe('stopped');
  });
  it('a session left pending without a job (its API died between INSERT and enqueue) starts within seconds, with no sweep or restart', async () => {
    // The scheduled sweep an hour away, the worker's start-up reconciliation long done:
    // only the workers' periodic check for pending sessions without a job can start it.
    const berth = await startBerth({ CLEANUP_INTERVAL_MINUTES: '60' });
    harnesses.push(berth);
    const { body: first } = await api(berth.url, 'POST', '/api/v1/terminals');
    await waitForStatus(berth.url, first.id, ['started']);
    await sleep(1000);
    // What a POST writes before it enqueues, and nothing after.
    const [orphan] = await sql<{ id: string }>(
      `INSERT INTO sessions (tenant_id, kind, status, image, platform, expires_at)
       SELECT tenant_id, kind, 'pending', image, platform, now() + interval '1 hour' FROM sessions WHERE id = $1 RETURNING id`,
      [first.id],
    );
    const queue = berth.app.get<Queue>(getQueueToken(QueueName.Provisioning));
    expect(await queue.getJob(jobId(JobName.ProvisionSession, orphan.id))).toBeUndefined();

    const started = await waitForStatus(berth.url, orphan.id, ['started', 'failed'], 12_000);
    expect(started.status).toBe('started');
    expect(await containersOf(berth.instance, orphan.id)).toHaveLength(1);
  });
});
