import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { Berth, TEST_DATABASE_URL, TEST_REDIS_URL, api, eventually, resetDatabase, startBerth } from './support/berth-harness';
import { FaultProxy } from './support/fault-proxy';

function expectCleanError(body: Record<string, unknown>, status: number): void {
  expect(body.statusCode).toBe(status);
  expect(typeof body.message === 'string' || Array.isArray(body.message)).toBe(true);
  expect(JSON.stringify(body)).not.toMatch(/\n\s+at |stack|node_modules/);
}

describe('bad input gets a clear 4xx', () => {
  let berth: Berth;

  beforeAll(async () => {
    await resetDatabase();
    // API only: these requests must be refused before anything is queued.
    berth = await startBerth({}, { api: true, worker: false });
  });

  afterAll(async () => {
    await berth.close();
  });

  it.each([
    ['malformed JSON', '{"ttl_seconds": ', /not valid JSON/],
    ['an unknown field', { image: 'evil/image' }, /property image should not exist/],
    ['a TTL of the wrong type', { ttl_seconds: 'soon' }, /ttl_seconds must be an integer number/],
    ['a TTL below 1', { ttl_seconds: 0 }, /ttl_seconds must not be less than 1/],
    ['a JSON array', '[1,2]', /Request body must be a JSON object/],
  ])('POST with %s is 400 and creates nothing', async (_, body, message) => {
    const before = await api(berth.url, 'GET', '/api/v1/terminals');
    const response = await api(berth.url, 'POST', '/api/v1/terminals', body);
    expect(response.status).toBe(400);
    expectCleanError(response.body, 400);
    expect(JSON.stringify(response.body.message)).toMatch(message);
    expect((await api(berth.url, 'GET', '/api/v1/terminals')).body.total).toBe(before.body.total);
  });

  it('a body over 64 KiB is 413', async () => {
    const response = await api(berth.url, 'POST', '/api/v1/terminals', { pad: 'x'.repeat(70_000) });
    expect(response.status).toBe(413);
    expectCleanError(response.body, 413);
  });

  it.each(['GET', 'DELETE'])('%s with a malformed id is 400, an unknown id 404', async (method) => {
    const bad = await api(berth.url, method, '/api/v1/terminals/not-a-uuid');
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/uuid is expected/);
    const unknown = await api(berth.url, method, `/api/v1/terminals/${randomUUID()}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('session_not_found');
    expectCleanError(unknown.body, 404);
  });

  it.each([
    ['status=bogus', /status must be one of: pending, starting, started, stopping, stopped, expired, failed/],
    ['limit=0', /limit must not be less than 1/],
    ['limit=500', /limit must not be greater than 200/],
    ['offset=-1', /offset must not be less than 0/],
    ['offset=1e20', /offset must not be greater than 2147483647/],
    ['limit=ten', /limit must be an integer number/],
    ['colour=blue', /property colour should not exist/],
  ])('listing with %s is 400', async (query, message) => {
    const response = await api(berth.url, 'GET', `/api/v1/terminals?${query}`);
    expect(response.status).toBe(400);
    expect(JSON.stringify(response.body.message)).toMatch(message);
  });

  it.each([
    ['tunnel', {}, /session_id must be a UUID/],
    ['tunnel', { session_id: 'nope' }, /session_id must be a UUID/],
    ['tunnel', { terminal_id: 'nope' }, /terminal_id must be a UUID/],
    ['tunnel', { terminal_id: randomUUID(), tunnel_url: 'javascript:alert(1)' }, /tunnel_url must be a URL address/],
    ['status', { terminal_id: randomUUID(), status: 'started', error_message: 'x' }, /status must be one of the following values: failed/],
    ['status', { terminal_id: randomUUID(), status: 'failed' }, /error_message must be a string/],
  ])('callback %s with a bad body is 400', async (kind, body, message) => {
    const response = await api(berth.url, 'POST', `/api/v1/callbacks/${kind}`, body, { authorization: 'Bearer x' });
    expect(response.status).toBe(400);
    expect(JSON.stringify(response.body.message)).toMatch(message);
  });

  it('an unknown route is 404 without internals', async () => {
    const response = await api(berth.url, 'GET', '/api/v1/nope');
    expect(response.status).toBe(404);
    expectCleanError(response.body, 404);
  });
});

describe('Postgres or Redis unreachable gives 503 quickly and writes nothing', () => {
  const postgres = new FaultProxy(5432);
  const redis = new FaultProxy(6379);
  let berth: Berth;
  let direct: DataSource;

  const rowCount = async () => Number((await direct.query('SELECT count(*) AS n FROM sessions'))[0].n);

  beforeAll(async () => {
    await resetDatabase();
    const pgPort = await postgres.start();
    const redisPort = await redis.start();
    berth = await startBerth(
      {
        DATABASE_URL: TEST_DATABASE_URL.replace(':5432/', `:${pgPort}/`),
        REDIS_URL: TEST_REDIS_URL.replace(':6379', `:${redisPort}`),
      },
      { api: true, worker: false },
    );
    direct = new DataSource({ type: 'postgres', url: TEST_DATABASE_URL });
    await direct.initialize();
  });

  afterAll(async () => {
    await postgres.restore();
    await redis.restore();
    await berth.close();
    await direct.destroy();
    await postgres.cut();
    await redis.cut();
  });

  it('Redis down: POST is 503 within seconds, no row is left behind; reads still work', async () => {
    expect((await api(berth.url, 'POST', '/api/v1/terminals')).status).toBe(202);
    const rowsBefore = await rowCount();

    await redis.cut();
    const started = Date.now();
    const refused = await api(berth.url, 'POST', '/api/v1/terminals');
    expect(refused.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(3000);
    expectCleanError(refused.body, 503);
    expect(await rowCount()).toBe(rowsBefore);
    expect((await api(berth.url, 'GET', '/api/v1/terminals')).status).toBe(200);
    const health = await api(berth.url, 'GET', '/health');
    expect(health.status).toBe(503);
    expect(health.body.checks.redis.status).toBe('down');
    expect(health.body.checks.database.status).toBe('up');
    // Unauthenticated endpoint: no driver detail (addresses, users) in the answer.
    expect(health.body.checks.redis.error).toMatch(/^(unreachable|no answer within \d+ ms)$/);

    await redis.restore();
    await eventually(async () => (await api(berth.url, 'POST', '/api/v1/terminals')).status === 202, 15_000, 'recovery');
  });

  it('Postgres down: requests are 503 within seconds; service resumes when it returns', async () => {
    await postgres.cut();
    for (const [method, path] of [
      ['POST', '/api/v1/terminals'],
      ['GET', '/api/v1/terminals'],
      ['GET', `/api/v1/terminals/${randomUUID()}`],
    ]) {
      const started = Date.now();
      const response = await api(berth.url, method, path);
      expect(response.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(5000);
      expectCleanError(response.body, 503);
      expect(response.body.code).toBe('dependency_unavailable');
    }
    const health = await api(berth.url, 'GET', '/health');
    expect(health.status).toBe(503);
    expect(health.body.checks.database.status).toBe('down');

    await postgres.restore();
    await eventually(async () => (await api(berth.url, 'GET', '/api/v1/terminals')).status === 200, 15_000, 'recovery');
  });
});
