import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LABELS } from '../src/platform/container-platform';
import { Berth, api, containersOf, docker, eventually, resetDatabase, sleep, startBerth, waitForStatus } from './support/berth-harness';
import { FaultProxy } from './support/fault-proxy';
import { TEST_IMAGES } from './support/test-images';

describe('expiry, timeouts, failures and reaping', () => {
  let berth: Berth | undefined;

  beforeEach(async () => {
    await resetDatabase();
  });

  afterEach(async () => {
    await berth?.close();
    berth = undefined;
  });

  it('expires a session at its TTL and removes the container', async () => {
    berth = await startBerth();
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals', { ttl_seconds: 3 });
    expect(new Date(body.expires_at).getTime() - new Date(body.created_at).getTime()).toBe(3000);
    await waitForStatus(berth.url, body.id, ['started']);
    expect(await containersOf(berth.instance, body.id)).toHaveLength(1);

    const expired = await waitForStatus(berth.url, body.id, ['expired'], 15_000);
    expect(expired.deleted_at).not.toBeNull();
    await eventually(async () => (await containersOf(berth!.instance, body.id)).length === 0, 10_000, 'container removal');
    // An expired session stays expired: DELETE does not change it.
    expect((await api(berth.url, 'DELETE', `/api/v1/terminals/${body.id}`)).body.status).toBe('expired');
  });

  it('rejects a TTL above the configured maximum', async () => {
    berth = await startBerth({ TERMINAL_TTL_HOURS: '1' });
    const response = await api(berth.url, 'POST', '/api/v1/terminals', { ttl_seconds: 3601 });
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(/ttl_seconds must not exceed 3600/);
  });

  it('fails a session that does not report ready within the start timeout', async () => {
    berth = await startBerth({ TERMINAL_IMAGE: TEST_IMAGES.sleeper.tag, START_TIMEOUT_SECONDS: '2' });
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    const failed = await waitForStatus(berth.url, body.id, ['failed', 'started'], 15_000);
    expect(failed.status).toBe('failed');
    expect(failed.error_message).toBe('did not start within 2 s');
    await eventually(async () => (await containersOf(berth!.instance, body.id)).length === 0, 10_000, 'container removal');
  });

  it('fails a session whose container exits, with the exit code and its last output', async () => {
    berth = await startBerth({ TERMINAL_IMAGE: TEST_IMAGES.crasher.tag });
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    const failed = await waitForStatus(berth.url, body.id, ['failed', 'started'], 15_000);
    expect(failed.status).toBe('failed');
    expect(failed.error_message).toMatch(/container exited with code 3/);
    expect(failed.error_message).toMatch(/cannot open \/dev\/berth/);
    await eventually(async () => (await containersOf(berth!.instance, body.id)).length === 0, 10_000, 'container removal');
  });

  it('fails at once, without retrying, when the image does not exist', async () => {
    berth = await startBerth({ TERMINAL_IMAGE: 'berth-test/no-such-image:1' });
    const started = Date.now();
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    const failed = await waitForStatus(berth.url, body.id, ['failed', 'started'], 15_000);
    expect(failed.error_message).toBe('image berth-test/no-such-image:1 is not available on the Docker engine');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('removes orphaned containers and fails sessions whose container vanished', async () => {
    berth = await startBerth({ CLEANUP_INTERVAL_MINUTES: '0.02' });
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    const started = await waitForStatus(berth.url, body.id, ['started']);

    // An orphan: a container with this install's labels and no live session.
    const orphanSession = randomUUID();
    const orphan = await docker.createContainer({
      name: `${berth.instance}-terminal-${orphanSession}`,
      Image: TEST_IMAGES.sleeper.tag,
      Labels: { [LABELS.managedBy]: 'berth', [LABELS.instance]: berth.instance, [LABELS.sessionId]: orphanSession, [LABELS.kind]: 'terminal' },
      HostConfig: { NetworkMode: 'none' },
    });
    await orphan.start();
    // Someone else's container (another install) must be left alone.
    const foreign = await docker.createContainer({
      name: `other-install-${orphanSession}`,
      Image: TEST_IMAGES.sleeper.tag,
      Labels: { [LABELS.managedBy]: 'berth', [LABELS.instance]: 'another-install', [LABELS.sessionId]: orphanSession },
      HostConfig: { NetworkMode: 'none' },
    });
    await foreign.start();
    try {
      // The session's own container disappears behind Berth's back.
      await docker.getContainer(started.container_id).remove({ force: true });

      await eventually(async () => (await containersOf(berth!.instance, orphanSession)).length === 0, 15_000, 'orphan removal');
      const vanished = await waitForStatus(berth.url, body.id, ['failed'], 15_000);
      // The engine's `die` event may be handled while the container is still being removed
      // (exited, killed: 137), or the sweep may find it gone.
      expect(vanished.error_message).toMatch(/^(container disappeared|container exited with code 137)$/);
      expect((await foreign.inspect()).State.Running).toBe(true);
    } finally {
      await foreign.remove({ force: true });
    }
  });

  it('refuses callbacks with a missing or wrong secret and changes nothing', async () => {
    // A sleeper never calls back, so the session waits in `starting` for our forged callbacks.
    berth = await startBerth({ TERMINAL_IMAGE: TEST_IMAGES.sleeper.tag, START_TIMEOUT_SECONDS: '60' });
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    await waitForStatus(berth.url, body.id, ['starting']);

    // A waiting GET gives up after its wait and answers with the current state.
    const asked = Date.now();
    const waited = await api(berth.url, 'GET', `/api/v1/terminals/${body.id}?wait_seconds=1`);
    expect(waited.body.status).toBe('starting');
    expect(Date.now() - asked).toBeGreaterThanOrEqual(1000);
    expect(Date.now() - asked).toBeLessThan(3000);

    const tunnel = { terminal_id: body.id, tunnel_url: 'http://127.0.0.1:1/' };
    const missing = await api(berth.url, 'POST', '/api/v1/callbacks/tunnel', tunnel);
    expect(missing.status).toBe(401);
    const wrong = await api(berth.url, 'POST', '/api/v1/callbacks/tunnel', tunnel, { authorization: 'Bearer guessed' });
    expect(wrong.status).toBe(401);
    // The user's access token is not a callback secret either.
    const accessToken = await api(berth.url, 'POST', '/api/v1/callbacks/tunnel', tunnel, { authorization: `Bearer ${body.access_token}` });
    expect(accessToken.status).toBe(401);
    const failure = await api(berth.url, 'POST', '/api/v1/callbacks/status', { terminal_id: body.id, status: 'failed', error_message: 'forged' }, { authorization: 'Bearer guessed' });
    expect(failure.status).toBe(401);
    expect(failure.body).toMatchObject({ statusCode: 401, code: 'callback_unauthorized' });

    const after = await api(berth.url, 'GET', `/api/v1/terminals/${body.id}`);
    expect(after.body).toMatchObject({ status: 'starting', tunnel_url: null, error_message: null });
  });
});

describe('transient platform errors', () => {
  const socketPath = join(tmpdir(), `berth-docker-${process.pid}.sock`);
  const engine = new FaultProxy('/var/run/docker.sock');
  let berth: Berth | undefined;

  beforeEach(async () => {
    await resetDatabase();
    await rm(socketPath, { force: true });
  });

  afterEach(async () => {
    await engine.restore();
    await berth?.close();
    berth = undefined;
    await engine.cut();
  });

  it('are retried with backoff: a session created while the engine is down starts when it returns', async () => {
    await engine.start(socketPath);
    berth = await startBerth({ DOCKER_SOCKET_PATH: socketPath, PROVISION_ATTEMPTS: '6', PROVISION_BACKOFF_MS: '300' });
    await engine.cut();
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    // Still trying, not failed.
    await sleep(1200);
    expect((await api(berth.url, 'GET', `/api/v1/terminals/${body.id}`)).body).toMatchObject({ status: 'starting', error_message: null });
    expect((await api(berth.url, 'GET', '/health')).body.checks.platform.status).toBe('down');

    await engine.restore();
    const started = await waitForStatus(berth.url, body.id, ['started', 'failed'], 30_000);
    expect(started.status).toBe('started');
    expect(await containersOf(berth.instance, body.id)).toHaveLength(1);
  });

  it('fail the session with the reason once the attempts run out', async () => {
    await engine.start(socketPath);
    berth = await startBerth({ DOCKER_SOCKET_PATH: socketPath, PROVISION_ATTEMPTS: '2', PROVISION_BACKOFF_MS: '100' });
    await engine.cut();
    const { body } = await api(berth.url, 'POST', '/api/v1/terminals');
    const failed = await waitForStatus(berth.url, body.id, ['failed', 'started'], 15_000);
    expect(failed.status).toBe('failed');
    expect(failed.error_message).toMatch(/^provisioning failed after 2 attempts: Docker engine error while creating container .*(ENOENT|ECONNREFUSED)/);
  });
});
