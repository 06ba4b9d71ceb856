import { Queue } from 'bullmq';
import { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { JobName, QueueName, jobId } from '../src/provisioning/jobs';
import {
  TERMINAL_IMAGE,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
  api,
  containersOf,
  eventually,
  freePort,
  removeContainers,
  resetDatabase,
  sleep,
  waitForStatus,
} from './support/berth-harness';
import { run } from './support/processes';
import { TEST_IMAGES } from './support/test-images';

async function exitOf(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, ms: Date.now() - started };
}

describe('entry points: start-up checks and graceful shutdown (built dist/)', () => {
  const instance = `p${process.pid}`;
  const prefix = `berth-test-proc-${process.pid}`;

  beforeAll(resetDatabase);
  afterAll(() => removeContainers(instance));

  it('refuses to start with an invalid variable, naming it', async () => {
    const { child, output } = run('main.js', { PORT: 'eighty', CONTAINER_PLATFORM: 'nomad' });
    const { code } = await exitOf(child, 15_000);
    expect(code).toBe(1);
    expect(output()).toMatch(/PORT="eighty"/);
    expect(output()).toMatch(/CONTAINER_PLATFORM="nomad"/);
    // No secret key, no start: there is no safe default for it.
    for (const entry of ['main.js', 'worker.js', 'gateway.js'] as const) {
      const started = run(entry, { BERTH_SECRET_KEY: '' });
      expect((await exitOf(started.child, 15_000)).code).toBe(1);
      expect(started.output()).toMatch(/BERTH_SECRET_KEY.*at least 32 characters/);
    }
  });

  it('the worker stops on SIGTERM, handing an in-flight provisioning job back to the queue', async () => {
    const port = await freePort();
    // Sessions whose containers never report ready (the image is recorded on the row at POST): the job stays in flight.
    const common = {
      QUEUE_PREFIX: prefix,
      BERTH_INSTANCE: instance,
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      TERMINAL_IMAGE: TEST_IMAGES.sleeper.tag,
      START_TIMEOUT_SECONDS: '120',
    };
    const apiProcess = run('main.js', common);
    const worker = run('worker.js', common);
    const queue = new Queue(QueueName.Provisioning, { connection: { url: TEST_REDIS_URL }, prefix });
    try {
      const base = `http://127.0.0.1:${port}`;
      await eventually(async () => (await api(base, 'GET', '/health')).status === 200, 30_000, 'API health');
      await eventually(async () => worker.output().includes('Berth worker running'), 30_000, 'worker start');

      const { body } = await api(base, 'POST', '/api/v1/terminals');
      await waitForStatus(base, body.id, ['starting']);
      const job = await queue.getJob(jobId(JobName.ProvisionSession, body.id));
      await eventually(async () => (await job!.getState()) === 'active', 10_000, 'job active');

      worker.child.kill('SIGTERM');
      const { code, ms } = await exitOf(worker.child, 20_000);
      expect(code).toBe(0);
      expect(ms).toBeLessThan(8000);
      expect(worker.output()).toMatch(/shutdown complete/);
      // Not failed, not lost: back in the queue for the next worker, no attempt spent.
      const state = await job!.getState();
      expect(['delayed', 'waiting']).toContain(state);
      expect((await queue.getJob(job!.id!))!.attemptsMade).toBe(0);
      expect((await api(base, 'GET', `/api/v1/terminals/${body.id}`)).body.status).toBe('starting');

      // The next worker takes the job over and adopts the running container: still exactly one.
      const [before] = await containersOf(instance, body.id);
      const successor = run('worker.js', common);
      try {
        await eventually(async () => (await job!.getState()) === 'active', 15_000, 'job taken over').catch(async (error: Error) => {
          const state = await job!.getState();
          const row = JSON.stringify((await api(base, 'GET', `/api/v1/terminals/${body.id}`)).body);
          throw new Error(`${error.message}; state ${state}; row ${row}; successor printed: ${successor.output().slice(-3000)}`);
        });
        await sleep(500);
        const after = await containersOf(instance, body.id);
        expect(after.map((container) => container.Id)).toEqual([before.Id]);
        expect(after[0].State).toBe('running');
      } finally {
        successor.child.kill('SIGTERM');
        expect((await exitOf(successor.child, 20_000)).code).toBe(0);
      }

      apiProcess.child.kill('SIGTERM');
      const apiExit = await exitOf(apiProcess.child, 20_000);
      expect(apiExit.code).toBe(0);
      await expect(fetch(`${base}/health`)).rejects.toThrow();
    } finally {
      apiProcess.child.kill('SIGKILL');
      worker.child.kill('SIGKILL');
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    }
  });
});
