/**
 * The bookkeeping at scale (issue 9, "Scale of the bookkeeping"): with 10,000 ended sessions
 * and 500 live ones in Postgres, listing sessions (paginated) and the cleanup sweep stay fast,
 * and the indexes match the queries.
 *
 *   npx ts-node --transpile-only bench/bookkeeping.ts [--live 500] [--ended 10000]
 *       [--list-requests 300] [--sweeps 20] [--create-concurrency 8]
 *
 * 1. Starts Berth (API + worker, from a copy of dist/) and launches --live REAL terminal
 *    sessions (containers on the engine), so the sweep lists, checks and reconciles real ones.
 * 2. Inserts --ended ended sessions (stopped, expired, failed; spread over the last 30 days) of
 *    the same tenant straight into Postgres, each with its audit trail (3 events), then ANALYZE.
 * 3. GET /api/v1/sessions pages, one request at a time: the first page, a page in the middle,
 *    the last page, and `status=started` (the live ones among 10,500 rows); latency per page.
 * 4. The cleanup sweep, --sweeps times: a `cleanup-sweep` job added to Berth's own lifecycle
 *    queue and run by its worker, timed by BullMQ's processedOn -> finishedOn (the real
 *    sweep: expiry, idle, start timeouts, one container listing, stopping retries, orphans,
 *    volumes, idempotency keys, Redis reconciliation of every live session's jobs).
 * 5. EXPLAIN (ANALYZE, BUFFERS) of the list queries and of every query the sweep makes.
 *
 * Output: markdown on stdout, JSON in bench/results/bookkeeping-<time>.json.
 */
import path from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Client as PgClient } from 'pg';
import {
  ADMIN,
  BENCH,
  DATABASE_URL,
  REDIS_URL,
  ROOT,
  STATS_HEADER,
  benchContainerCount,
  clearQueues,
  deleteSession,
  launchUntilStarted,
  loadAverage,
  log,
  machineInfo,
  markdownTable,
  now,
  parseArgs,
  prepareDatabase,
  removeBenchContainers,
  request,
  requireImage,
  snapshotDist,
  startBerth,
  stats,
  statsRow,
  timestampForFile,
  waitFor,
  writeJson,
  writeText,
} from './lib';

const args = parseArgs(process.argv.slice(2), {
  live: 500,
  ended: 10_000,
  'list-requests': 300,
  sweeps: 20,
  'create-concurrency': 8,
});

const LIVE = ['pending', 'starting', 'started'];
const HOLDING = ['warming', 'warm', ...LIVE, 'stopping'];

async function launchLive(url: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const t0 = now();
  const lane = async () => {
    while (next < count) {
      next++;
      const { session } = await launchUntilStarted(url, 'terminals', {}, 180_000);
      ids.push(session.id);
      if (ids.length % 50 === 0) log(`${ids.length}/${count} live sessions started (${((now() - t0) / 1000).toFixed(0)} s)`);
    }
  };
  await Promise.all(Array.from({ length: args['create-concurrency'] }, lane));
  return ids;
}

async function insertEnded(pg: PgClient, templateId: string, count: number): Promise<void> {
  await pg.query('BEGIN');
  // The audit trail's NOTIFY trigger would wake the API's live-event feed 30,000 times for rows
  // that are history; it is back on at COMMIT.
  await pg.query('ALTER TABLE session_events DISABLE TRIGGER "TRG_session_events_inserted"');
  await pg.query(`CREATE TEMP TABLE ended_template ON COMMIT DROP AS SELECT * FROM sessions WHERE id = $1`, [templateId]);
  await pg.query(
    `UPDATE ended_template SET host_port = NULL, reuse_key = NULL, volume = NULL, profile = NULL, owner = NULL,
       container_id = NULL, platform_state = '{}'::jsonb, pool_variant = NULL`,
  );
  // Every column comes from a real row; only identity, status and times differ.
  await pg.query(
    `INSERT INTO sessions
     SELECT (jsonb_populate_record(t, jsonb_build_object(
        'id', gen_random_uuid(),
        'status', (ARRAY['stopped','expired','failed'])[1 + g % 3],
        'container_name', 'gone-' || g,
        'created_at', now() - make_interval(secs => 60 + g * (30 * 86400.0 / $1)),
        'updated_at', now() - make_interval(secs => g * (30 * 86400.0 / $1)),
        'deleted_at', now() - make_interval(secs => g * (30 * 86400.0 / $1)),
        'expires_at', now() - make_interval(secs => g * (30 * 86400.0 / $1))
     ))).*
     FROM ended_template t, generate_series(1, $1) g`,
    [count],
  );
  await pg.query(
    `INSERT INTO session_events (session_id, tenant_id, type, actor, data, created_at)
     SELECT s.id, s.tenant_id, e.type, 'system', '{}'::jsonb, s.created_at
     FROM sessions s, (VALUES ('created'), ('started'), ('stopped')) e(type)
     WHERE s.container_name LIKE 'gone-%'`,
  );
  await pg.query('ALTER TABLE session_events ENABLE TRIGGER "TRG_session_events_inserted"');
  await pg.query('COMMIT');
  await pg.query('ANALYZE sessions');
  await pg.query('ANALYZE session_events');
}

async function timeList(url: string, query: string, n: number): Promise<{ ms: number[]; total: number; items: number }> {
  const ms: number[] = [];
  let total = 0;
  let items = 0;
  for (let i = 0; i < n; i++) {
    const t0 = now();
    const res = await request('GET', `${url}/api/v1/sessions?${query}`, { headers: ADMIN });
    ms.push(res.tEnd - t0);
    if (res.status !== 200) throw new Error(`GET /api/v1/sessions?${query} answered ${res.status}: ${res.body.slice(0, 200)}`);
    const body = JSON.parse(res.body) as { items: unknown[]; total: number };
    total = body.total;
    items = body.items.length;
  }
  return { ms, total, items };
}

interface SweepRun {
  ms: number;
  report: Record<string, number>;
}

async function timeSweeps(count: number): Promise<SweepRun[]> {
  const connection = { url: REDIS_URL, maxRetriesPerRequest: null };
  const queue = new Queue('lifecycle', { connection, prefix: BENCH.queuePrefix });
  const events = new QueueEvents('lifecycle', { connection, prefix: BENCH.queuePrefix });
  await events.waitUntilReady();
  const runs: SweepRun[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const job = await queue.add('cleanup-sweep', {}, { removeOnComplete: false, removeOnFail: false });
      const report = (await job.waitUntilFinished(events, 60_000)) as Record<string, number>;
      const done = await queue.getJob(job.id!);
      runs.push({ ms: done!.finishedOn! - done!.processedOn!, report });
      await done!.remove();
    }
  } finally {
    await events.close();
    await queue.close();
  }
  return runs;
}

async function explain(pg: PgClient, label: string, sql: string, params: unknown[]): Promise<{ label: string; sql: string; plan: string; ms: number }> {
  // Inside a transaction that is rolled back: the sweep's UPDATEs are explained as they run, and undone.
  await pg.query('BEGIN');
  try {
    const rows = (await pg.query(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${sql}`, params)).rows as { 'QUERY PLAN': string }[];
    const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
    const ms = Number(plan.match(/Execution Time: ([\d.]+) ms/)?.[1] ?? NaN);
    return { label, sql: sql.replace(/\s+/g, ' ').trim(), plan, ms };
  } finally {
    await pg.query('ROLLBACK');
  }
}

async function main(): Promise<void> {
  await requireImage(BENCH.terminalImage, 'run scripts/build-images.sh');
  const machine = machineInfo();
  const stamp = timestampForFile();
  await removeBenchContainers();
  await prepareDatabase();
  await clearQueues();
  const dist = snapshotDist();
  const berth = await startBerth({
    mode: 'combined',
    distDir: dist.dir,
    logName: `bookkeeping-${stamp}`,
    // The schedule would sweep on its own in the middle of a measurement; the bench runs them.
    env: { TERMINAL_TTL_HOURS: '48', START_TIMEOUT_SECONDS: '180', CLEANUP_INTERVAL_MINUTES: '600' },
  });
  const pg = new PgClient({ connectionString: DATABASE_URL });
  await pg.connect();
  let live: string[] = [];
  try {
    log(`launching ${args.live} live terminal sessions, ${args['create-concurrency']} at a time`);
    const tLaunch = now();
    live = await launchLive(berth.url, args.live);
    const launchSeconds = (now() - tLaunch) / 1000;
    log(`inserting ${args.ended} ended sessions with their audit trail`);
    const tInsert = now();
    await insertEnded(pg, live[0], args.ended);
    const insertSeconds = (now() - tInsert) / 1000;
    const counts = (await pg.query(`SELECT status, count(*)::int AS n FROM sessions GROUP BY status ORDER BY status`)).rows as { status: string; n: number }[];
    const tenantId = (await pg.query(`SELECT tenant_id FROM sessions WHERE id = $1`, [live[0]])).rows[0].tenant_id as string;
    const totalRows = counts.reduce((a, c) => a + c.n, 0);

    const n = args['list-requests'];
    const limit = 50;
    const lastOffset = Math.floor((totalRows - 1) / limit) * limit;
    const middleOffset = Math.floor(totalRows / 2 / limit) * limit;
    await timeList(berth.url, `limit=${limit}`, 20); // warm-up
    const lists = [
      { label: `first page (limit=${limit})`, query: `limit=${limit}` },
      { label: `middle page (offset=${middleOffset})`, query: `limit=${limit}&offset=${middleOffset}` },
      { label: `last page (offset=${lastOffset})`, query: `limit=${limit}&offset=${lastOffset}` },
      { label: 'live only (status=started, limit=200)', query: 'status=started&limit=200' },
      { label: 'terminals, first page (kind=terminal)', query: `kind=terminal&limit=${limit}` },
    ];
    const listResults = [];
    for (const l of lists) {
      log(`timing ${n} x GET /api/v1/sessions?${l.query}`);
      const r = await timeList(berth.url, l.query, n);
      listResults.push({ ...l, ...r, stats: stats(r.ms) });
    }

    log(`timing ${args.sweeps} cleanup sweeps`);
    await timeSweeps(2); // warm-up
    const sweeps = await timeSweeps(args.sweeps);
    const stillStarted = (await pg.query(`SELECT count(*)::int AS n FROM sessions WHERE id = ANY($1::uuid[]) AND status = 'started'`, [live])).rows[0].n as number;

    const listWhere = `tenant_id = $1 AND ($2::varchar IS NULL OR kind = $2) AND ($3::varchar IS NULL OR status = $3) AND ($4::varchar IS NULL OR owner = $4)`;
    const sample = (await pg.query(`SELECT id FROM sessions ORDER BY random() LIMIT 600`)).rows.map((r: { id: string }) => r.id);
    const plans = [
      await explain(pg, 'list: first page', `SELECT * FROM sessions WHERE ${listWhere} ORDER BY created_at DESC, id LIMIT 50 OFFSET 0`, [tenantId, null, null, null]),
      await explain(pg, `list: last page`, `SELECT * FROM sessions WHERE ${listWhere} ORDER BY created_at DESC, id LIMIT 50 OFFSET ${lastOffset}`, [tenantId, null, null, null]),
      await explain(pg, 'list: status=started', `SELECT * FROM sessions WHERE ${listWhere} ORDER BY created_at DESC, id LIMIT 200 OFFSET 0`, [tenantId, null, 'started', null]),
      await explain(pg, 'list: total', `SELECT count(*)::int AS total FROM sessions WHERE ${listWhere}`, [tenantId, null, null, null]),
      await explain(pg, 'sweep: expire past TTL', `UPDATE sessions SET status = 'stopping', updated_at = now() WHERE status = ANY($1::varchar[]) AND expires_at <= now() RETURNING id`, [LIVE]),
      await explain(
        pg,
        'sweep: idle past timeout',
        `UPDATE sessions SET status = 'stopping', updated_at = now() WHERE status = 'started' AND idle_timeout_seconds IS NOT NULL AND last_activity_at + make_interval(secs => idle_timeout_seconds) <= now() RETURNING id`,
        [],
      ),
      await explain(
        pg,
        'sweep: start timeouts',
        `UPDATE sessions SET status = 'failed', updated_at = now() WHERE (status = 'starting' AND admitted_at <= now() - make_interval(secs => $1)) OR (status = 'warming' AND created_at <= now() - make_interval(secs => $1)) RETURNING id`,
        [180],
      ),
      await explain(pg, 'sweep: running sessions (checked against the one container listing)', `SELECT * FROM sessions WHERE status IN ('started', 'warm')`, []),
      await explain(pg, 'sweep: stopping removals to retry', `SELECT * FROM sessions WHERE status = 'stopping' AND updated_at <= now() - make_interval(secs => $1)`, [30]),
      await explain(pg, 'sweep: which listed containers are held (orphans)', `SELECT id FROM sessions WHERE id = ANY($1::uuid[]) AND status = ANY($2::varchar[])`, [sample, HOLDING]),
      await explain(pg, 'sweep: idempotency keys to forget', `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)`, [86400]),
      await explain(pg, 'reconcile: pending without a job', `SELECT id FROM sessions WHERE status = 'pending' ORDER BY created_at, id`, []),
    ];

    const sweepStats = stats(sweeps.map((s) => s.ms));
    const out: string[] = [];
    out.push(`# Bookkeeping at scale (${new Date().toISOString()})`);
    out.push('');
    out.push(`Machine: ${machine.nproc} cores, ${machine.cpuModel}, ${machine.memTotalGiB} GiB, Docker ${machine.dockerInfo}, Node ${process.version}. Berth API + worker in one process. Load after: ${Object.values(loadAverage()).slice(0, 3).join('/')}.`);
    out.push('');
    out.push(
      `Rows: ${counts.map((c) => `${c.status} ${c.n}`).join(', ')} (${totalRows} in all, one tenant). ${live.length} live terminals launched for real in ${launchSeconds.toFixed(0)} s; ` +
        `${args.ended} ended sessions and ${args.ended * 3} audit events inserted in ${insertSeconds.toFixed(1)} s.`,
    );
    out.push('');
    out.push(`## GET /api/v1/sessions, ${n} requests each, one at a time`);
    out.push('');
    out.push(markdownTable(['page', 'items / total', ...STATS_HEADER.slice(1)], listResults.map((r) => [r.label, `${r.items} / ${r.total}`, ...statsRow('', r.stats).slice(1)])));
    out.push('');
    out.push(`## Cleanup sweep, ${sweeps.length} runs (BullMQ processedOn -> finishedOn, the worker's own sweep)`);
    out.push('');
    out.push(markdownTable(STATS_HEADER, [statsRow('**sweep**', sweepStats)]));
    out.push('');
    out.push(`Every sweep's report was ${JSON.stringify(sweeps[sweeps.length - 1]?.report)}; ${stillStarted}/${live.length} live sessions still \`started\` afterwards (the sweep ended none of them).`);
    out.push('');
    out.push('## Query plans (EXPLAIN ANALYZE, BUFFERS; UPDATE/DELETE inside a rolled-back transaction)');
    out.push('');
    out.push(markdownTable(['query', 'execution ms', 'plan (top node)'], plans.map((p) => [p.label, p.ms.toFixed(3), '`' + p.plan.split('\n')[0].trim().replace(/\|/g, '\\|') + '`'])));
    out.push('');
    for (const p of plans) {
      out.push(`<details><summary>${p.label}</summary>\n\n\`\`\`sql\n${p.sql}\n\`\`\`\n\n\`\`\`\n${p.plan}\n\`\`\`\n</details>\n`);
    }
    const markdown = out.join('\n');
    const file = writeJson(`bookkeeping-${stamp}.json`, { args, machine, counts, launchSeconds, insertSeconds, lists: listResults, sweeps, plans, markdown });
    const mdFile = writeText(`bookkeeping-${stamp}.md`, markdown);
    console.log(markdown);
    console.log(`\nResults: ${path.relative(ROOT, file)} and ${path.relative(ROOT, mdFile)}`);
  } finally {
    log(`deleting ${live.length} live sessions`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < live.length) {
          const id = live[next++];
          await deleteSession(berth.url, id).catch((error: Error) => log(`DELETE ${id}: ${error.message}`));
        }
      }),
    );
    await waitFor(async () => (await benchContainerCount()) === 0, 180_000, 'bench containers to be removed', 500).catch((error: Error) => log(error.message));
    await pg.end();
    await berth.stop();
    dist.remove();
    await removeBenchContainers();
  }
}

main().then(
  () => process.exit(0),
  async (error: Error) => {
    console.error(`bookkeeping failed: ${error.stack ?? error.message}`);
    await removeBenchContainers().catch(() => undefined);
    process.exit(1);
  },
);
