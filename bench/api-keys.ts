/**
 * What authentication costs in steady state (issue 7: "GET /api/v1/terminals/{id}
 * at 500 requests/s keeps p99 under 20 ms; key checks must not cost a database
 * round trip per request").
 *
 *   npx ts-node --transpile-only bench/api-keys.ts [--rate 500] [--seconds 30] [--warmup-s 5] [--connections 32]
 *
 * Starts Berth (API + worker, from a copy of dist/), creates a tenant with a key
 * of its own and one terminal, then sends GET /api/v1/terminals/{id} with that
 * key at a fixed rate (open loop: a request leaves every 1/rate s whether or not
 * earlier ones have answered, so a stall shows up in the latencies instead of
 * slowing the sender). Latency is measured from each request's scheduled time.
 * Postgres' own counters (pg_stat_user_tables) say how often the api_keys and
 * tenants tables were read during the measured window: the key cache makes it
 * zero in steady state.
 *
 * Output: markdown on stdout, JSON in bench/results/api-keys-<time>.json.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { Pool } from 'undici';
import {
  ADMIN,
  BENCH,
  DATABASE_URL,
  RESULTS_DIR,
  STATS_HEADER,
  loadAverage,
  log,
  machineInfo,
  markdownTable,
  now,
  parseArgs,
  prepareDatabase,
  removeBenchContainers,
  requireImage,
  sleep,
  snapshotDist,
  startBerth,
  stats,
  statsRow,
  timestampForFile,
} from './lib';

const args = parseArgs(process.argv.slice(2), { rate: 500, seconds: 30, 'warmup-s': 5, connections: 32 });

interface TableReads {
  apiKeys: number;
  tenants: number;
}

/** Index and sequential scans Postgres has counted on the tables a key check would read. */
async function tableReads(pg: PgClient): Promise<TableReads> {
  const rows = (
    await pg.query<{ relname: string; reads: string }>(
      `SELECT relname, (COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0))::text AS reads FROM pg_stat_user_tables WHERE relname IN ('api_keys', 'tenants')`,
    )
  ).rows;
  const of = (name: string) => Number(rows.find((row) => row.relname === name)?.reads ?? 0);
  return { apiKeys: of('api_keys'), tenants: of('tenants') };
}

/** Sends GET `path` at `rate` per second for `seconds`; latencies in ms from each request's scheduled start. */
async function openLoop(pool: Pool, requestPath: string, key: string, rate: number, seconds: number): Promise<{ latencies: number[]; errors: number; statuses: Map<number, number> }> {
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  let errors = 0;
  const total = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const start = now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const scheduled = start + i * interval;
    const wait = scheduled - now();
    if (wait > 1) await sleep(Math.floor(wait));
    // Late: counted from when it was due (a stall shows). Early (timer granularity): from when it left.
    const from = Math.min(scheduled, now());
    inFlight.push(
      pool
        .request({ method: 'GET', path: requestPath, headers: { authorization: `Bearer ${key}` } })
        .then(async (response) => {
          await response.body.dump();
          latencies.push(now() - from);
          statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        })
        .catch(() => {
          errors++;
        }),
    );
  }
  await Promise.all(inFlight);
  return { latencies, errors, statuses };
}

async function main(): Promise<void> {
  await requireImage(BENCH.terminalImage, 'run scripts/build-images.sh');
  await prepareDatabase();
  await removeBenchContainers();
  const dist = snapshotDist();
  const load = loadAverage();
  const berth = await startBerth({ mode: 'combined', distDir: dist.dir, logName: `api-keys-${timestampForFile()}`, env: { LOG_LEVEL: 'warn' } });
  const pg = new PgClient({ connectionString: DATABASE_URL });
  await pg.connect();
  const pool = new Pool(berth.url, { connections: args.connections, pipelining: 1 });
  try {
    const post = (route: string, body: unknown, headers: Record<string, string>) =>
      fetch(`${berth.url}${route}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((res) => res.json());
    const tenant = await post('/api/v1/tenants', { name: `bench-${Date.now()}` }, ADMIN);
    const key = (await post(`/api/v1/tenants/${tenant.id}/keys`, { name: 'bench' }, ADMIN)).key as string;
    const session = await post('/api/v1/terminals', {}, { authorization: `Bearer ${key}` });
    const requestPath = `/api/v1/terminals/${session.id}`;

    log(`warming up: ${args['warmup-s']} s at ${args.rate}/s`);
    await openLoop(pool, requestPath, key, args.rate, args['warmup-s']);
    const before = await tableReads(pg);
    log(`measuring: ${args.seconds} s at ${args.rate}/s, ${args.connections} connections`);
    const measured = await openLoop(pool, requestPath, key, args.rate, args.seconds);
    const after = await tableReads(pg);
    const latency = stats(measured.latencies);
    const reads = { apiKeys: after.apiKeys - before.apiKeys, tenants: after.tenants - before.tenants };
    const result = {
      command: `npx ts-node --transpile-only bench/api-keys.ts ${process.argv.slice(2).join(' ')}`.trim(),
      at: new Date().toISOString(),
      machine: machineInfo(),
      loadBefore: load,
      args,
      requests: measured.latencies.length,
      errors: measured.errors,
      statuses: Object.fromEntries(measured.statuses),
      latencyMs: latency,
      tableReadsDuringMeasurement: reads,
    };
    const file = path.join(RESULTS_DIR, `api-keys-${timestampForFile()}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2));
    console.log(`\n${result.command}  (${result.at}, load ${load.load1.toFixed(2)} before)\n`);
    console.log(markdownTable(STATS_HEADER, [statsRow(`GET ${'/api/v1/terminals/{id}'} with a tenant key at ${args.rate}/s`, latency)]));
    console.log(`\nrequests ${result.requests}, errors ${result.errors}, statuses ${JSON.stringify(result.statuses)}`);
    console.log(`api_keys reads during the window: ${reads.apiKeys}; tenants reads: ${reads.tenants} (for ${result.requests} requests)`);
    console.log(`results: ${file}`);
    await fetch(`${berth.url}/api/v1/sessions/${session.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } });
  } finally {
    await pool.close();
    await pg.end();
    await berth.stop();
    await removeBenchContainers();
    dist.remove();
  }
}

main().catch((error: Error) => {
  console.error(error);
  process.exit(1);
});
