import { INestApplication, INestApplicationContext, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { IncomingHttpHeaders, request } from 'node:http';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { AppModule, Roles } from '../../src/app.module';
import { BerthConfig } from '../../src/config/berth-config';
import { createLogger } from '../../src/common/logger';
import { HTTP_APP_OPTIONS, configureHttpApp } from '../../src/http-app';
import { LABELS } from '../../src/platform/container-platform';
import { hashToken } from '../../src/common/tokens';
import { DEFAULT_TENANT_ID } from '../../src/tenancy/tenants.repository';
import { freePort, sleep } from './net';
import { TEST_ADMIN_KEY, TEST_SECRET_KEY } from './test-config';

export { TEST_ADMIN_KEY };

/**
 * Connection URLs with the credentials scripts/ensure-services.sh generated.
 * `npm test` exports them; running jest directly asks the same script.
 */
function serviceUrls(): { database: string; redis: string } {
  if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
    return { database: process.env.TEST_DATABASE_URL, redis: process.env.TEST_REDIS_URL };
  }
  const output = execFileSync('bash', [join(__dirname, '..', '..', 'scripts', 'service-urls.sh'), 'berth_test'], { encoding: 'utf8' });
  const value = (name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(output)![1];
  return { database: value('DATABASE_URL'), redis: value('REDIS_URL') };
}
const urls = serviceUrls();

/**
 * The e2e files run in parallel jest workers (scripts/test.sh). Each worker
 * gets a database of its own (berth_test, berth_test_2, ...: test files
 * truncate every table) and a host port range of its own (the unique index
 * that keeps two sessions off one port is per database). Redis is shared:
 * every harness has its own queue prefix and container label already.
 */
const WORKER = Math.max(1, Number(process.env.JEST_WORKER_ID ?? 1));
function databaseOfWorker(url: string): string {
  if (WORKER === 1) return url;
  const parsed = new URL(url);
  parsed.pathname = `${parsed.pathname}_${WORKER}`;
  return parsed.toString();
}
export const TEST_DATABASE_URL = databaseOfWorker(urls.database);
export const TEST_REDIS_URL = urls.redis;
export const TEST_PORT_RANGE = `${20000 + (WORKER - 1) * 2500}-${20000 + WORKER * 2500 - 1}`;
export const TERMINAL_IMAGE = process.env.TERMINAL_IMAGE ?? 'berth/terminal:latest';
export const BROWSER_IMAGE = process.env.BROWSER_IMAGE ?? 'berth/browser:latest';

export const docker = new Docker({ socketPath: '/var/run/docker.sock', version: 'v1.41' });

export { freePort, sleep } from './net';

/** Polls `probe` until it returns a truthy value or the time runs out. */
export async function eventually<T>(probe: () => Promise<T | undefined | null | false>, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export interface Berth {
  url: string;
  config: BerthConfig;
  app: INestApplication | INestApplicationContext;
  instance: string;
  close(): Promise<void>;
}

/**
 * Boots Berth in this process against the real services. Each harness gets
 * its own queue prefix and ownership label, so its jobs and containers never
 * mix with another test file's.
 */
export async function startBerth(env: Record<string, string> = {}, roles: Roles = { api: true, worker: true }): Promise<Berth> {
  const port = Number(env.PORT ?? (await freePort()));
  const instance = env.BERTH_INSTANCE ?? `t${randomBytes(4).toString('hex')}`;
  const config = BerthConfig.fromEnvironment({
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: `berth-test-${instance}`,
    BERTH_INSTANCE: instance,
    BERTH_SECRET_KEY: TEST_SECRET_KEY,
    BERTH_ADMIN_KEY: TEST_ADMIN_KEY,
    // Tests flush activity often so assertions about it do not wait seconds.
    IDLE_TIMEOUT_MIN_SECONDS: '1',
    ACTIVITY_FLUSH_SECONDS: '0.2',
    TERMINAL_IMAGE,
    BROWSER_IMAGE,
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    START_TIMEOUT_SECONDS: '20',
    SESSION_PORT_RANGE: TEST_PORT_RANGE,
    PROVISION_BACKOFF_MS: '200',
    ...env,
  });
  let app: INestApplication | INestApplicationContext;
  const module = AppModule.forRoot(config, roles);
  // TEST_LOG_LEVEL=log (or warn, debug) shows what Berth logs while a test runs.
  const logger = process.env.TEST_LOG_LEVEL ? createLogger(config) : (['error'] as LogLevel[]);
  if (roles.api) {
    const http = await NestFactory.create<NestExpressApplication>(module, { ...HTTP_APP_OPTIONS, logger });
    configureHttpApp(http, config);
    await http.listen(port, '127.0.0.1');
    app = http;
  } else {
    app = await NestFactory.createApplicationContext(module, { logger });
    await app.init();
  }
  const startedAt = Date.now();
  return {
    url: `http://127.0.0.1:${port}`,
    config,
    app,
    instance,
    close: async () => {
      // BullMQ (5.81) turns a Redis connection closed while it is still initialising into an
      // unhandled rejection: RedisConnection.close() removes the listeners its failing init()
      // then reports to. A Berth closed within a moment of its start (a test that makes one
      // request) would hit that; give its connections that moment.
      const young = MIN_LIFETIME_MS - (Date.now() - startedAt);
      if (young > 0) await sleep(young);
      await app.close();
      await removeContainers(instance);
    },
  };
}

/** How long a test's Berth lives at least before it is closed (see close()). */
const MIN_LIFETIME_MS = 1500;

/** Containers carrying this instance's ownership label. */
export async function containersOf(instance: string, sessionId?: string): Promise<Docker.ContainerInfo[]> {
  const label = [`${LABELS.instance}=${instance}`];
  if (sessionId) label.push(`${LABELS.sessionId}=${sessionId}`);
  return docker.listContainers({ all: true, filters: { label } });
}

export async function removeContainers(instance: string): Promise<void> {
  for (const container of await containersOf(instance)) {
    await docker.getContainer(container.Id).remove({ force: true }).catch(() => undefined);
  }
}

/** Empties Berth's tables: the cleanup sweep works on every row, so test files must not see each other's. */
export async function resetDatabase(): Promise<void> {
  const dataSource = new DataSource({ type: 'postgres', url: TEST_DATABASE_URL });
  await dataSource.initialize();
  try {
    const tables: { name: string }[] = await dataSource.query(
      `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'berth_migrations'`,
    );
    if (tables.length) await dataSource.query(`TRUNCATE ${tables.map((table) => `"${table.name}"`).join(', ')} CASCADE`);
    // The default tenant (the admin key's) is part of the schema.
    if (tables.some((table) => table.name === 'tenants')) {
      await dataSource.query(`INSERT INTO tenants (id, name) VALUES ($1, 'default') ON CONFLICT DO NOTHING`, [DEFAULT_TENANT_ID]);
    }
  } finally {
    await dataSource.destroy();
  }
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/**
 * One API call. Sends the admin key (the default tenant's) unless `headers`
 * has its own `authorization`; `authorization: ''` sends none.
 */
export async function api<T = any>(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
  const sent: Record<string, string> = { authorization: `Bearer ${TEST_ADMIN_KEY}`, ...headers };
  if (sent.authorization === '') delete sent.authorization;
  const init: RequestInit = { method, headers: sent };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body: parsed as T, headers: response.headers };
}

export async function waitForStatus(base: string, id: string, statuses: string[], timeoutMs = 20_000): Promise<any> {
  return eventually(
    async () => {
      const { body } = await api(base, 'GET', `/api/v1/sessions/${id}`);
      return statuses.includes(body.status) ? body : undefined;
    },
    timeoutMs,
    `session ${id} to reach ${statuses.join('|')}`,
  );
}

/** A session row pointing at an upstream the test controls (no container), with a known access token. */
export async function insertSession(options: { upstreamUrl: string | null; status?: string; kind?: string; tenantId?: string }): Promise<{ id: string; token: string }> {
  const dataSource = new DataSource({ type: 'postgres', url: TEST_DATABASE_URL });
  await dataSource.initialize();
  try {
    const token = randomBytes(32).toString('base64url');
    const rows: { id: string }[] = await dataSource.query(
      `WITH created AS (
         INSERT INTO sessions (tenant_id, kind, status, image, platform, upstream_url, expires_at, started_at)
         VALUES ($5, $1, $2, 'test/fake-upstream', 'docker', $3, now() + interval '1 hour', now()) RETURNING id
       ), token AS (INSERT INTO session_access_tokens (token_hash, session_id) SELECT $4, id FROM created)
       SELECT id FROM created`,
      [options.kind ?? 'terminal', options.status ?? 'started', options.upstreamUrl, hashToken(token), options.tenantId ?? DEFAULT_TENANT_ID],
    );
    return { id: rows[0].id, token };
  } finally {
    await dataSource.destroy();
  }
}

/** Runs one SQL statement against the test database (for changes "another process" makes). */
export async function sql<T = Record<string, unknown>>(query: string, params: unknown[] = []): Promise<T[]> {
  const dataSource = new DataSource({ type: 'postgres', url: TEST_DATABASE_URL });
  await dataSource.initialize();
  try {
    const result = await dataSource.query(query, params);
    return (Array.isArray(result) && Array.isArray(result[0]) ? result[0] : result) as T[];
  } finally {
    await dataSource.destroy();
  }
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * An HTTP request with full control of the headers, Host included: Node's
 * resolver does not resolve `*.localhost`, so session origins are reached by
 * connecting to 127.0.0.1 with the session's Host header, as a browser would.
 */
export function httpRequest(
  url: string,
  options: { method?: string; host?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: options.method ?? 'GET',
        headers: { ...(options.host ? { host: options.host } : {}), ...options.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The gateway role on its own (standalone), in this process, forwarding API traffic to `apiUrl`. */
export async function startGateway(apiUrl: string, env: Record<string, string> = {}): Promise<{ url: string; port: number; app: INestApplicationContext; close(): Promise<void> }> {
  const port = Number(env.GATEWAY_PORT ?? (await freePort()));
  const config = BerthConfig.fromEnvironment({
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    BERTH_SECRET_KEY: TEST_SECRET_KEY,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(port),
    GATEWAY_API_UPSTREAM: apiUrl,
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    RUN_MIGRATIONS_ON_START: 'false',
    ACTIVITY_FLUSH_SECONDS: '0.2',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    ...env,
  });
  const app = await NestFactory.createApplicationContext(AppModule.forRoot(config, { api: false, worker: false, gateway: true }), { logger: ['error'] });
  await app.init();
  return { url: `http://127.0.0.1:${port}`, port, app, close: () => app.close() };
}
