/**
 * Browser sessions: start latency, idle memory and the CDP round trip (issue 6, "Performance").
 *
 *   npx ts-node --transpile-only bench/browsers.ts [--n 30] [--warm-n 15] [--only cold,warm,memory,cdp]
 *       [--memory-steps 10,20,30] [--cdp-iterations 5000] [--env KEY=VALUE,...]   (--help: all options)
 *
 * 1. cold start, one session at a time, headful and headless alternated: POST /api/v1/browsers
 *    (202) -> `started` (GET with wait_seconds: answered the moment the session starts) -> the
 *    first 200 of `/json/version` through the gateway. Pool disabled (POOL_BROWSERS_* = 0, the
 *    defaults). Interleaved with the same number of **engine baselines**: berth/browser:latest
 *    run by hand with `docker run -d` the way Berth runs it (host network, the hardening flags and
 *    limits of src/platform/docker/docker-container-options.ts, a bound agent environment as in
 *    docs/SESSION-CONTAINERS.md), timed to its ready callback (a stand-in receiver here) and to
 *    CDP answering (`/json/version` 200 with X-Berth-Secret, polled every 10 ms); and unbound, as
 *    a warm pool container starts, to `/.berth/health` ready. Where the time goes: Berth's logs,
 *    `docker events` and the agent's own log lines (`docker logs`).
 * 2. warm pool (POOL_BROWSERS_HEADLESS=2, POOL_BROWSERS_HEADFUL=2, a second Berth): POST answers
 *    201 `started`; POST -> 201 and -> CDP answering through the gateway. Each claim is made with
 *    the pool full again.
 * 3. idle memory, headful then headless: sessions created in steps (10, 20, 40), then after a
 *    settle: the container's memory cgroup (v1 memory.usage_in_bytes / v2 memory.current, and
 *    its rss+shmem), the PSS of its processes and of its containerd shim, the host's MemAvailable
 *    drop per session, idle CPU. A projection of how many idle browsers one host holds.
 * 4. CDP round trip, `Runtime.evaluate('1')` on the page over a raw WebSocket, thousands of times
 *    one after the other: through the gateway (`cdp_url?token=`) versus straight to the agent's
 *    port with X-Berth-Secret (the upstream secret derived from the bench's BERTH_SECRET_KEY).
 *
 * Everything talks to 127.0.0.1 and the local Docker socket only; sessions use host networking.
 * Own database (berth_bench), queue prefix (berth-bench-browsers) and instance label
 * (berth.instance=bench-browsers); baselines carry berth.bench=baseline. Everything it starts is
 * removed at the end. Output: markdown on stdout, JSON + markdown in bench/results/.
 * Requires: services up, berth/browser:latest built, `npx nest build` (scripts/bench.sh browsers).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import WebSocket from 'ws';
import { deriveSecret } from '../src/common/tokens';
import { CallbackReceiver } from './baselines';
import {
  BENCH,
  DATABASE_URL,
  DockerEventRecorder,
  MiB,
  GiB,
  RunningBerth,
  benchContainerCount,
  clearQueues,
  containerProcessPss,
  containersCpuSeconds,
  engineMemory,
  fmtMs,
  foreignContainers,
  freePort,
  loadAverage,
  log,
  machineInfo,
  markdownTable,
  now,
  onInterrupt,
  parseArgs,
  parseEnvList,
  prepareDatabase,
  processCpuSeconds,
  readMeminfo,
  removeBenchContainers,
  request,
  requireImage,
  sleep,
  snapshotDist,
  startBerth,
  stats,
  Stats,
  STATS_HEADER,
  statsRow,
  timestampForFile,
  waitContainerGone,
  waitFor,
  writeJson,
  writeText,
} from './lib';

// Apart from the terminal benchmarks: their clean-up never touches these containers or jobs.
if (!process.env.BENCH_INSTANCE) BENCH.instance = 'bench-browsers';
if (!process.env.BENCH_QUEUE_PREFIX) BENCH.queuePrefix = 'berth-bench-browsers';
const BROWSER_IMAGE = process.env.BENCH_BROWSER_IMAGE ?? 'berth/browser:latest';
const SECRET_KEY = process.env.BENCH_SECRET_KEY ?? 'bench-browsers-secret-key-0123456789abcdef0123456789';
const ADMIN_KEY = process.env.BENCH_ADMIN_KEY ?? 'bench-browsers-admin-key-fedcba9876543210fedcba98765';
const AUTH = { authorization: `Bearer ${ADMIN_KEY}` };

const args = parseArgs(process.argv.slice(2), {
  only: 'cold,warm,memory,cdp',
  n: 30,
  'baseline-runs': -1,
  warmup: 2,
  'warm-n': 15,
  'memory-steps': '10,20,40',
  'settle-s': 20,
  'cpu-window-s': 10,
  'min-free-gib': 3,
  'host-gib': 24,
  'headroom-gib': 2,
  'cdp-iterations': 5000,
  'cdp-block': 250,
  env: '',
});
const phases = new Set(String(args.only).split(',').map((p) => p.trim()));
const baselineRuns = args['baseline-runs'] < 0 ? args.n : args['baseline-runs'];
const aborted = onInterrupt('interrupted: finishing the current step, then cleaning up (Ctrl-C again to exit at once)');

type Mode = 'headful' | 'headless';
const MODES: Mode[] = ['headful', 'headless'];
const DEFAULT_VIEWPORT = { width: 1280, height: 720 };
const optionsOf = (mode: Mode) => ({ headless: mode === 'headless', viewport: DEFAULT_VIEWPORT, view_only: false });

// ---------------------------------------------------------------------------- small helpers

function dockerCli(cliArgs: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('docker', cliArgs, { timeout: timeoutMs, maxBuffer: 16 * MiB }, (error, stdout, stderr) =>
      error ? reject(new Error(`docker ${cliArgs[0]}: ${stderr || error.message}`)) : resolve(stdout.trim()),
    ),
  );
}

/** The agent's JSON log lines of a container: message -> wall-clock ms of its first occurrence. */
async function agentTimeline(container: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    const text = await dockerCli(['logs', container], 20_000);
    for (const line of text.split('\n')) {
      try {
        const entry = JSON.parse(line) as { ts?: string; msg?: string };
        if (entry.ts && entry.msg && !(entry.msg in out)) out[entry.msg] = Date.parse(entry.ts);
      } catch {
        // Chromium's own output, not JSON
      }
    }
  } catch {
    // gone already
  }
  return out;
}

async function api(berth: RunningBerth, method: string, urlPath: string, body?: unknown): Promise<{ status: number; json: any; tFirstByte: number; tEnd: number }> {
  const res = await request(method, `${berth.url}${urlPath}`, { body, headers: AUTH, timeoutMs: 60_000 });
  let json: any = null;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = res.body;
  }
  return { status: res.status, json, tFirstByte: res.tFirstByte, tEnd: res.tEnd };
}

/** Polls `url` (fresh connection each time: the port may not listen yet) until it answers 200; returns performance.now() then. */
async function firstOk(url: string, headers: Record<string, string>, timeoutMs: number, intervalMs = 10, accept: (body: string) => boolean = () => true): Promise<number> {
  const deadline = now() + timeoutMs;
  let last = '';
  while (now() < deadline) {
    const sent = now();
    try {
      const res = await request('GET', url, { headers, agent: false, timeoutMs: 5000 });
      if (res.status === 200 && accept(res.body)) return res.tEnd;
      last = `status ${res.status}: ${res.body.slice(0, 200)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    const wait = intervalMs - (now() - sent);
    if (wait > 0) await sleep(wait);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (${last})`);
}

async function sessionRow(id: string): Promise<{ upstream_url: string | null; created_at: Date; started_at: Date | null }> {
  const client = new PgClient({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT upstream_url, created_at, started_at FROM sessions WHERE id = $1', [id]);
    return rows[0];
  } finally {
    await client.end();
  }
}

const fmtUs = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '-' : `${Math.round(ms * 1000)}`);
const round1 = (x: number) => Math.round(x * 10) / 10;
const median = (values: number[]) => stats(values)?.p50 ?? NaN;

async function medianMemAvailable(reads = 5, gapMs = 1000): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < reads; i++) {
    if (i) await sleep(gapMs);
    values.push(readMeminfo().available);
  }
  return median(values);
}

// ---------------------------------------------------------------------------- engine baseline

interface BaselineSample {
  mode: Mode;
  /** Bound: a cold start's environment (session id, callback). Unbound: a warm pool container's (launch options only). */
  bound: boolean;
  error?: string;
  /** ms since `docker run` was spawned. */
  cliReturnMs?: number;
  callbackMs?: number;
  cdpMs?: number;
  /** Unbound only: `/.berth/health` says ready (what the worker waits for before a pool container is `warm`). */
  healthReadyMs?: number;
  /** From the agent's log (wall clock, ms resolution), relative to the spawn. */
  agentListeningMs?: number;
  chromiumAnswersMs?: number;
  agentReadyMs?: number;
  removeMs?: number;
}

/** Berth's container settings for a browser, as `docker run` flags (BROWSER_* defaults: 1 GiB, 1 CPU, 1024 pids, 512 MiB tmpfs). */
function berthRunFlags(): string[] {
  const tmpfs = `rw,nosuid,nodev,size=${512 * MiB}`;
  return [
    '--network', 'host', '--read-only', '--tmpfs', `/tmp:${tmpfs}`, '--tmpfs', `/home/berth:${tmpfs},uid=1000,gid=1000`,
    '--user', '1000:1000', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true',
    '--memory', String(1024 * MiB), '--memory-swap', String(1024 * MiB), '--cpus', '1', '--pids-limit', '1024',
    '--restart', 'no', '--log-driver', 'json-file', '--log-opt', 'max-size=1m', '--log-opt', 'max-file=1',
    '--stop-signal', 'SIGTERM', '--stop-timeout', '10',
  ];
}

async function runBaselineOnce(receiver: CallbackReceiver, mode: Mode, bound: boolean): Promise<BaselineSample> {
  const sessionId = randomUUID();
  const secret = randomBytes(32).toString('base64url');
  const port = await freePort();
  const name = `bench-baseline-browser-${randomBytes(4).toString('hex')}`;
  const sample: BaselineSample = { mode, bound };
  const ready = bound ? receiver.expect(sessionId).then(({ at }) => at) : Promise.resolve(NaN);
  ready.catch(() => undefined);
  const env: Record<string, string> = {
    BERTH_PORT: String(port),
    BERTH_LISTEN_HOST: '127.0.0.1',
    BERTH_SECRET_SHA256: createHash('sha256').update(secret, 'utf8').digest('hex'),
    ...(bound
      ? { BERTH_SESSION_ID: sessionId, BERTH_CALLBACK_URL: receiver.url, BERTH_CALLBACK_TOKEN: randomBytes(32).toString('base64url'), BERTH_OPTIONS: JSON.stringify(optionsOf(mode)) }
      : { BERTH_LAUNCH_OPTIONS: JSON.stringify({ headless: mode === 'headless', viewport: DEFAULT_VIEWPORT }) }),
    BERTH_URL_POLICY: JSON.stringify({ allow_hosts: [], allow_cidrs: [] }),
    BERTH_MAX_UPLOAD_BYTES: String(100 * MiB),
  };
  const t0Wall = Date.now();
  const t0 = now();
  try {
    await dockerCli(['run', '-d', '--name', name, '--label', 'berth.bench=baseline', ...berthRunFlags(), ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), BROWSER_IMAGE]);
    sample.cliReturnMs = now() - t0;
    const agentHeaders = { 'x-berth-secret': secret };
    if (bound) {
      const [readyAt, cdpAt] = await Promise.all([ready, firstOk(`http://127.0.0.1:${port}/json/version`, agentHeaders, 30_000)]);
      sample.callbackMs = readyAt - t0;
      sample.cdpMs = cdpAt - t0;
    } else {
      sample.healthReadyMs = (await firstOk(`http://127.0.0.1:${port}/.berth/health`, agentHeaders, 30_000, 10, (body) => JSON.parse(body).ready === true)) - t0;
    }
    const timeline = await agentTimeline(name);
    if (timeline.listening) sample.agentListeningMs = timeline.listening - t0Wall;
    if (timeline['chromium answers']) sample.chromiumAnswersMs = timeline['chromium answers'] - t0Wall;
    if (timeline.ready) sample.agentReadyMs = timeline.ready - t0Wall;
  } catch (error) {
    sample.error = (error as Error).message;
  } finally {
    const tRemove = now();
    await dockerCli(['rm', '-f', name]).catch(() => undefined);
    sample.removeMs = now() - tRemove;
  }
  return sample;
}

// ---------------------------------------------------------------------------- cold and warm starts

interface StartSample {
  mode: Mode;
  pool: boolean;
  id?: string;
  error?: string;
  postStatus?: number;
  /** ms since the POST was sent (client clock). */
  postMs?: number;
  startedSeenMs?: number;
  cdpMs?: number;
  /** Postgres clock, no polling: started_at - created_at. */
  dbCreatedToStartedMs?: number;
  /** Wall clock, relative to the POST: Berth's logs, docker events, the agent's log. */
  logCreatedMs?: number;
  engineCreateMs?: number;
  engineStartMs?: number;
  agentListeningMs?: number;
  chromiumAnswersMs?: number;
  agentReadyMs?: number;
  callbackAcceptedMs?: number;
  logStartedMs?: number;
  deleteToGoneMs?: number;
}

async function measureStart(berth: RunningBerth, events: DockerEventRecorder, mode: Mode, pool: boolean): Promise<StartSample> {
  const sample: StartSample = { mode, pool };
  const t0Wall = Date.now();
  const t0 = now();
  try {
    const created = await api(berth, 'POST', '/api/v1/browsers', { headless: mode === 'headless' });
    sample.postStatus = created.status;
    sample.postMs = created.tEnd - t0;
    if (![201, 202].includes(created.status)) throw new Error(`POST /api/v1/browsers answered ${created.status}: ${JSON.stringify(created.json).slice(0, 300)}`);
    const id: string = created.json.id;
    const token: string = created.json.access_token;
    sample.id = id;
    let view = created.json;
    if (view.status === 'started') sample.startedSeenMs = sample.postMs;
    else {
      // Long poll: answered as soon as the session is started (or ended); no polling lag.
      for (let guard = 0; guard < 10 && !['started', 'failed', 'stopped', 'stopping'].includes(view.status); guard++) {
        const got = await api(berth, 'GET', `/api/v1/browsers/${id}?wait_seconds=30`);
        if (got.status !== 200) throw new Error(`GET answered ${got.status}`);
        view = got.json;
        sample.startedSeenMs = got.tEnd - t0;
      }
      if (view.status !== 'started') throw new Error(`session became ${view.status}: ${view.error_message}`);
    }
    if (pool && created.status !== 201) throw new Error(`expected 201 from the warm pool, got ${created.status} (${view.status})`);
    if (!pool && created.status !== 202) throw new Error(`expected a cold start (202), got ${created.status}`);
    sample.cdpMs = (await firstOk(`${view.path_url}json/version?token=${token}`, {}, 30_000)) - t0;
    const row = await sessionRow(id);
    if (row?.started_at) sample.dbCreatedToStartedMs = row.started_at.getTime() - row.created_at.getTime();

    const logged = berth.events.get(id) ?? {};
    if (logged['session created']) sample.logCreatedMs = logged['session created'] - t0Wall;
    if (logged['session started']) sample.logStartedMs = logged['session started'] - t0Wall;
    const engine = events.bySession.get(id) ?? {};
    if (engine.create) sample.engineCreateMs = engine.create - t0Wall;
    if (engine.start) sample.engineStartMs = engine.start - t0Wall;
    if (!pool && view.container_name) {
      const timeline = await agentTimeline(view.container_name);
      if (timeline.listening) sample.agentListeningMs = timeline.listening - t0Wall;
      if (timeline['chromium answers']) sample.chromiumAnswersMs = timeline['chromium answers'] - t0Wall;
      if (timeline.ready) sample.agentReadyMs = timeline.ready - t0Wall;
      if (timeline['ready callback accepted']) sample.callbackAcceptedMs = timeline['ready callback accepted'] - t0Wall;
    }
  } catch (error) {
    sample.error = (error as Error).message;
  } finally {
    if (sample.id) {
      const tDelete = now();
      await api(berth, 'DELETE', `/api/v1/browsers/${sample.id}`).catch(() => undefined);
      const gone = await waitContainerGone(sample.id, 30_000);
      sample.deleteToGoneMs = Number.isFinite(gone) ? now() - tDelete : NaN;
    }
  }
  return sample;
}

async function poolFull(berth: RunningBerth): Promise<boolean> {
  const got = await api(berth, 'GET', '/api/v1/pool');
  if (got.status !== 200) throw new Error(`GET /api/v1/pool answered ${got.status}`);
  const variants = (got.json.variants as { variant: string; size: number; warm: number; warming: number }[]).filter((v) => v.variant.startsWith('browser-'));
  return variants.length === 2 && variants.every((v) => v.warm >= v.size && v.warming === 0);
}

function startRows(samples: StartSample[], mode: Mode): string[][] {
  const ok = samples.filter((s) => s.mode === mode && !s.error);
  const col = (f: (s: StartSample) => number | undefined) => stats(ok.map(f).filter((x): x is number => x !== undefined));
  const seg = (a: (s: StartSample) => number | undefined, b: (s: StartSample) => number | undefined) =>
    col((s) => (a(s) !== undefined && b(s) !== undefined ? b(s)! - a(s)! : undefined));
  const pool = ok[0]?.pool;
  const rows = [
    statsRow(`POST -> ${pool ? '201' : '202'} response`, col((s) => s.postMs)),
    statsRow(`**POST -> \`started\` seen**${pool ? ' (the 201 itself)' : ' (GET wait_seconds)'}`, col((s) => s.startedSeenMs)),
    statsRow('POST -> CDP answering through the gateway (`/json/version` 200)', col((s) => s.cdpMs)),
    statsRow('row created_at -> started_at (DB clock)', col((s) => s.dbCreatedToStartedMs)),
  ];
  if (!pool) {
    rows.push(
      statsRow('segment: POST -> "session created" logged', col((s) => s.logCreatedMs)),
      statsRow('segment: "session created" -> engine `create` event', seg((s) => s.logCreatedMs, (s) => s.engineCreateMs)),
      statsRow('segment: engine `create` -> `start` event', seg((s) => s.engineCreateMs, (s) => s.engineStartMs)),
      statsRow('segment: engine `start` event -> agent "listening" (the event is sent after the process runs: ~0)', seg((s) => s.engineStartMs, (s) => s.agentListeningMs)),
      statsRow('segment: agent "listening" -> "chromium answers"', seg((s) => s.agentListeningMs, (s) => s.chromiumAnswersMs)),
      statsRow('segment: "chromium answers" -> agent "ready"', seg((s) => s.chromiumAnswersMs, (s) => s.agentReadyMs)),
      statsRow('segment: agent "ready" -> "session started" logged (callback)', seg((s) => s.agentReadyMs, (s) => s.logStartedMs)),
      statsRow('segment: "session started" logged -> client sees `started`', seg((s) => s.logStartedMs, (s) => s.startedSeenMs)),
    );
  }
  rows.push(statsRow('DELETE -> container gone (not part of the start)', col((s) => s.deleteToGoneMs)));
  return rows;
}

function baselineRows(samples: BaselineSample[], mode: Mode): string[][] {
  const pick = (bound: boolean) => samples.filter((s) => s.mode === mode && s.bound === bound && !s.error);
  const col = (bound: boolean, f: (s: BaselineSample) => number | undefined) => stats(pick(bound).map(f).filter((x): x is number => x !== undefined));
  return [
    statsRow('bound: `docker run -d` returns (CLI)', col(true, (s) => s.cliReturnMs)),
    statsRow('bound: `docker run` -> agent "listening" (its log)', col(true, (s) => s.agentListeningMs)),
    statsRow('bound: `docker run` -> "chromium answers" (its log)', col(true, (s) => s.chromiumAnswersMs)),
    statsRow('**bound: `docker run` -> ready callback received**', col(true, (s) => s.callbackMs)),
    statsRow('**bound: `docker run` -> CDP answering (`/json/version` 200)**', col(true, (s) => s.cdpMs)),
    statsRow('bound: `docker rm -f`', col(true, (s) => s.removeMs)),
    statsRow('unbound (pool): `docker run` -> "chromium answers" (its log)', col(false, (s) => s.chromiumAnswersMs)),
    statsRow('unbound (pool): `docker run` -> `/.berth/health` ready', col(false, (s) => s.healthReadyMs)),
  ];
}

// ---------------------------------------------------------------------------- memory

interface CgroupMemory {
  /** v1 memory.usage_in_bytes / v2 memory.current: what the limit is checked against (page cache included). */
  usage: number;
  /** Anonymous + shmem (tmpfs, X shared memory): what the session itself allocated. */
  anonShmem: number;
  cache: number;
  version: 'v1' | 'v2' | 'none';
}

function cgroupMemory(id: string): CgroupMemory {
  const v1 = `/sys/fs/cgroup/memory/docker/${id}`;
  const v2 = [`/sys/fs/cgroup/docker/${id}`, `/sys/fs/cgroup/system.slice/docker-${id}.scope`].find((d) => existsSync(`${d}/memory.current`));
  const stat = (file: string) => {
    const out: Record<string, number> = {};
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [k, v] = line.split(' ');
      if (k) out[k] = Number(v);
    }
    return out;
  };
  if (existsSync(`${v1}/memory.usage_in_bytes`)) {
    const s = stat(`${v1}/memory.stat`);
    return { usage: Number(readFileSync(`${v1}/memory.usage_in_bytes`, 'utf8')), anonShmem: (s.total_rss ?? 0) + (s.total_shmem ?? 0), cache: s.total_cache ?? 0, version: 'v1' };
  }
  if (v2) {
    const s = stat(`${v2}/memory.stat`);
    return { usage: Number(readFileSync(`${v2}/memory.current`, 'utf8')), anonShmem: (s.anon ?? 0) + (s.shmem ?? 0), cache: s.file ?? 0, version: 'v2' };
  }
  return { usage: NaN, anonShmem: NaN, cache: NaN, version: 'none' };
}

interface MemoryStep {
  mode: Mode;
  sessions: number;
  createSeconds: number;
  hostUsed: number;
  perSession: number;
  marginal: number | null;
  cgroupVersion: string;
  usageMean: number;
  usageMin: number;
  usageMax: number;
  anonShmemMean: number;
  cacheMean: number;
  processPssMean: number;
  processPssAnonShmemMean: number;
  processesMean: number;
  shimPssMean: number;
  shimRssMean: number;
  cgroupPlusShimMean: number;
  idleCpuPctSessions: number;
  idleCpuPctBerth: number;
  berthRss: number;
  dockerd: number;
  containerd: number;
  memAvailable: number;
  load: string;
  foreign: number;
}

async function createIdle(berth: RunningBerth, mode: Mode, count: number, concurrency = 2): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  let failure: Error | null = null;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count && !failure && !aborted()) {
        next++;
        try {
          const created = await api(berth, 'POST', '/api/v1/browsers', { headless: mode === 'headless' });
          if (created.status !== 202) throw new Error(`POST answered ${created.status}`);
          ids.push(created.json.id);
          const got = await api(berth, 'GET', `/api/v1/browsers/${created.json.id}?wait_seconds=60`);
          if (got.json.status !== 'started') throw new Error(`session ${created.json.id} became ${got.json.status}: ${got.json.error_message}`);
        } catch (error) {
          failure = error as Error;
        }
      }
    }),
  );
  if (failure) throw failure;
  return ids;
}

async function measureMemory(berth: RunningBerth, steps: number[]): Promise<{ steps: MemoryStep[]; baselines: Record<string, number>; notes: string[] }> {
  const result: MemoryStep[] = [];
  const baselines: Record<string, number> = {};
  const notes: string[] = [];
  for (const mode of MODES) {
    if (aborted()) break;
    await sleep(5000);
    const base = await medianMemAvailable();
    baselines[mode] = base;
    log(`memory ${mode}: baseline MemAvailable ${(base / GiB).toFixed(2)} GiB`);
    const ids: string[] = [];
    let previous: { sessions: number; used: number } | null = null;
    try {
      for (const target of steps) {
        if (aborted()) break;
        if (readMeminfo().available < args['min-free-gib'] * GiB) {
          notes.push(`${mode}: stopped before ${target} sessions: MemAvailable under ${args['min-free-gib']} GiB`);
          break;
        }
        const t = now();
        ids.push(...(await createIdle(berth, mode, target - ids.length)));
        const createSeconds = (now() - t) / 1000;
        log(`memory ${mode}: ${ids.length} sessions started in ${createSeconds.toFixed(1)} s; settling ${args['settle-s']} s`);
        await sleep(args['settle-s'] * 1000);
        const containers = await Promise.all(ids.map(async (id) => (await api(berth, 'GET', `/api/v1/browsers/${id}`)).json.container_id as string));
        const cpu0 = containersCpuSeconds(containers);
        const berthPid = berth.processes[0].child.pid!;
        const berthCpu0 = processCpuSeconds(berthPid);
        const tw = now();
        await sleep(args['cpu-window-s'] * 1000);
        const windowS = (now() - tw) / 1000;
        const idleCpuPctSessions = ((containersCpuSeconds(containers) - cpu0) / windowS) * 100;
        const idleCpuPctBerth = ((processCpuSeconds(berthPid) - berthCpu0) / windowS) * 100;
        const available = await medianMemAvailable();
        const cg = containers.map(cgroupMemory);
        const pss = containerProcessPss(containers);
        const processes = containers.map((id) => {
          const file = `/sys/fs/cgroup/memory/docker/${id}/cgroup.procs`;
          return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : NaN;
        });
        const engine = engineMemory(new Set(containers));
        const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
        const used = base - available;
        const step: MemoryStep = {
          mode,
          sessions: ids.length,
          createSeconds,
          hostUsed: used,
          perSession: used / ids.length,
          marginal: previous ? (used - previous.used) / (ids.length - previous.sessions) : null,
          cgroupVersion: cg[0]?.version ?? 'none',
          usageMean: mean(cg.map((c) => c.usage)),
          usageMin: Math.min(...cg.map((c) => c.usage)),
          usageMax: Math.max(...cg.map((c) => c.usage)),
          anonShmemMean: mean(cg.map((c) => c.anonShmem)),
          cacheMean: mean(cg.map((c) => c.cache)),
          processPssMean: pss.total.pss / Math.max(1, pss.found),
          processPssAnonShmemMean: (pss.total.anon + pss.total.shmem) / Math.max(1, pss.found),
          processesMean: mean(processes),
          shimPssMean: engine.shimsOursPss.pss / Math.max(1, engine.shimCountOurs),
          shimRssMean: engine.shimsOurs / Math.max(1, engine.shimCountOurs),
          cgroupPlusShimMean: mean(cg.map((c) => c.usage)) + engine.shimsOursPss.pss / Math.max(1, engine.shimCountOurs),
          idleCpuPctSessions,
          idleCpuPctBerth,
          berthRss: berth.rss(),
          dockerd: engine.dockerd,
          containerd: engine.containerd,
          memAvailable: available,
          load: (({ load1, load5, load15 }) => `${load1}/${load5}/${load15}`)(loadAverage()),
          foreign: await foreignContainers(),
        };
        result.push(step);
        previous = { sessions: ids.length, used };
        log(
          `memory ${mode} @${ids.length}: host ${(step.perSession / MiB).toFixed(1)} MiB/session, cgroup ${(step.usageMean / MiB).toFixed(1)} (anon+shmem ${(step.anonShmemMean / MiB).toFixed(1)}), shim PSS ${(step.shimPssMean / MiB).toFixed(1)}, idle CPU ${idleCpuPctSessions.toFixed(1)} %`,
        );
      }
    } catch (error) {
      notes.push(`${mode}: ${(error as Error).message}`);
    } finally {
      await Promise.all(ids.map((id) => api(berth, 'DELETE', `/api/v1/browsers/${id}`).catch(() => undefined)));
      await waitFor(async () => (await benchContainerCount()) === 0, 180_000, 'every browser container gone', 500).catch((error) => notes.push((error as Error).message));
    }
  }
  return { steps: result, baselines, notes };
}

// ---------------------------------------------------------------------------- CDP round trip

/** A minimal CDP client over one WebSocket: flat sessions, one command in flight at a time. */
class RawCdp {
  private nextId = 1;
  private readonly pending = new Map<number, (message: any) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString('utf8'));
      if (message.id !== undefined) {
        this.pending.get(message.id)?.(message);
        this.pending.delete(message.id);
      }
    });
  }

  static connect(url: string, headers: Record<string, string>): Promise<{ cdp: RawCdp; handshakeMs: number }> {
    const t0 = now();
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers, perMessageDeflate: false, maxPayload: 256 * MiB });
      ws.once('open', () => resolve({ cdp: new RawCdp(ws), handshakeMs: now() - t0 }));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        res.on('end', () => reject(new Error(`${url.replace(/token=[^&]+/, 'token=…')} answered ${res.statusCode}: ${body.slice(0, 200)}`)));
      });
      ws.once('error', reject);
    });
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method}: no answer within 10 s`)), 10_000);
      this.pending.set(id, (message) => {
        clearTimeout(timer);
        if (message.error) reject(new Error(`${method}: ${JSON.stringify(message.error)}`));
        else resolve(message.result);
      });
      this.ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
    });
  }

  /** Attaches (flat) to the first page; returns its session id. */
  async attachToPage(): Promise<string> {
    const { targetInfos } = await this.send('Target.getTargets');
    const page = (targetInfos as { type: string; targetId: string }[]).find((t) => t.type === 'page');
    if (!page) throw new Error('no page target');
    const { sessionId } = await this.send('Target.attachToTarget', { targetId: page.targetId, flatten: true });
    return sessionId;
  }

  close(): void {
    this.ws.close();
  }
}

interface CdpResult {
  mode: Mode;
  iterations: number;
  direct: Stats | null;
  gateway: Stats | null;
  handshakeDirect: Stats | null;
  handshakeGateway: Stats | null;
  samplesDirect: number[];
  samplesGateway: number[];
}

async function measureCdp(berth: RunningBerth, mode: Mode): Promise<CdpResult> {
  const created = await api(berth, 'POST', '/api/v1/browsers', { headless: mode === 'headless' });
  if (created.status !== 202) throw new Error(`POST answered ${created.status}`);
  const id: string = created.json.id;
  const token: string = created.json.access_token;
  try {
    const view = (await api(berth, 'GET', `/api/v1/browsers/${id}?wait_seconds=60`)).json;
    if (view.status !== 'started') throw new Error(`session became ${view.status}`);
    const upstream = (await sessionRow(id)).upstream_url!;
    const secret = deriveSecret(SECRET_KEY, 'session-upstream', id.toLowerCase());
    const directUrl = `${upstream.replace(/^http/, 'ws')}/devtools/browser`;
    const gatewayUrl = `${view.cdp_url}?token=${token}`;
    const directHeaders = { 'x-berth-secret': secret };

    const handshakes = { direct: [] as number[], gateway: [] as number[] };
    for (let i = 0; i < 20; i++) {
      for (const [which, url, headers] of [['direct', directUrl, directHeaders], ['gateway', gatewayUrl, {}]] as const) {
        const { cdp, handshakeMs } = await RawCdp.connect(url, headers);
        handshakes[which].push(handshakeMs);
        cdp.close();
      }
      await sleep(20);
    }

    const direct = (await RawCdp.connect(directUrl, directHeaders)).cdp;
    const gateway = (await RawCdp.connect(gatewayUrl, {})).cdp;
    const directSession = await direct.attachToPage();
    const gatewaySession = await gateway.attachToPage();
    const evaluate = async (cdp: RawCdp, session: string) => {
      const t = now();
      const result = await cdp.send('Runtime.evaluate', { expression: '1' }, session);
      const elapsed = now() - t;
      if (result?.result?.value !== 1) throw new Error(`Runtime.evaluate('1') gave ${JSON.stringify(result)}`);
      return elapsed;
    };
    for (let i = 0; i < 300; i++) {
      await evaluate(direct, directSession);
      await evaluate(gateway, gatewaySession);
    }
    const samples = { direct: [] as number[], gateway: [] as number[] };
    const block = args['cdp-block'];
    for (let done = 0, round = 0; done < args['cdp-iterations'] && !aborted(); done += block, round++) {
      // Alternate which path goes first so drift over the run hits both alike.
      const order: ('direct' | 'gateway')[] = round % 2 ? ['gateway', 'direct'] : ['direct', 'gateway'];
      for (const which of order) {
        const [cdp, session] = which === 'direct' ? [direct, directSession] : [gateway, gatewaySession];
        for (let i = 0; i < block; i++) samples[which].push(await evaluate(cdp, session));
      }
    }
    direct.close();
    gateway.close();
    return {
      mode,
      iterations: samples.direct.length,
      direct: stats(samples.direct),
      gateway: stats(samples.gateway),
      handshakeDirect: stats(handshakes.direct),
      handshakeGateway: stats(handshakes.gateway),
      samplesDirect: samples.direct,
      samplesGateway: samples.gateway,
    };
  } finally {
    await api(berth, 'DELETE', `/api/v1/browsers/${id}`).catch(() => undefined);
    await waitContainerGone(id, 30_000);
  }
}

/** Nearest-rank percentile (as stats() does). */
function pct(values: number[], p: number): number {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
}

// ---------------------------------------------------------------------------- main

/** Runs one part of the benchmark; a failure is reported and the other parts still run. */
async function guarded(name: string, report: string[], body: () => Promise<unknown>): Promise<void> {
  try {
    await body();
  } catch (error) {
    log(`${name} failed: ${(error as Error).stack ?? error}`);
    report.push(`**${name} failed:** ${(error as Error).message}`, '');
  }
}

async function withBerth<T>(name: string, env: Record<string, string>, distDir: string, body: (berth: RunningBerth) => Promise<T>): Promise<T> {
  const berth = await startBerth({
    mode: 'combined',
    distDir,
    logName: name,
    env: {
      // Not the developer's .env in the repository (every entry point reads it from its working directory).
      BERTH_ENV_FILE: '/dev/null',
      SESSION_PORT_RANGE: process.env.BENCH_PORT_RANGE ?? '31000-31999',
      BERTH_SECRET_KEY: SECRET_KEY,
      BERTH_ADMIN_KEY: ADMIN_KEY,
      BROWSER_IMAGE,
      START_TIMEOUT_SECONDS: '120',
      RATE_LIMIT_PER_MINUTE: '1000000',
      POOL_BROWSERS_HEADLESS: '0',
      POOL_BROWSERS_HEADFUL: '0',
      POOL_TERMINALS: '0',
      ...env,
      ...parseEnvList(args.env),
    },
  });
  try {
    return await body(berth);
  } finally {
    await berth.stop();
    if (berth.problems.length) log(`${name}: Berth logged ${berth.problems.length} warnings/errors (first: ${berth.problems[0]})`);
  }
}

async function main(): Promise<void> {
  await requireImage(BROWSER_IMAGE, 'run scripts/build-images.sh');
  const machine = machineInfo();
  const loadBefore = loadAverage();
  const foreignBefore = await foreignContainers();
  log(`load before ${loadBefore.load1}/${loadBefore.load5}/${loadBefore.load15}, ${foreignBefore} other containers on the engine`);
  await prepareDatabase();
  await clearQueues();
  const leftovers = await removeBenchContainers();
  if (leftovers) log(`removed ${leftovers} left-over containers of earlier runs`);
  const dist = snapshotDist();
  const stamp = timestampForFile();
  const events = new DockerEventRecorder();
  events.start();
  const report: string[] = [];
  const json: Record<string, unknown> = { machine, loadBefore, foreignBefore, args, instance: BENCH.instance, image: BROWSER_IMAGE };
  const receiver = new CallbackReceiver();
  await receiver.listen();
  try {
    report.push(`# Browser benchmark (${machine.date})`, '', `Load average before: ${loadBefore.load1}/${loadBefore.load5}/${loadBefore.load15}; other containers on the engine: ${foreignBefore}.`, '');

    if (phases.has('cold') || phases.has('memory') || phases.has('cdp')) {
      await withBerth(`browsers-${stamp}-cold`, {}, dist.dir, async (berth) => {
        if (phases.has('cold')) await guarded('cold start', report, async () => {
          log(`cold starts: ${args.warmup} warm-up per mode, then ${args.n} per mode, with ${baselineRuns} engine baselines per mode and environment (bound, unbound) interleaved`);
          for (let i = 0; i < args.warmup; i++) for (const mode of MODES) await measureStart(berth, events, mode, false);
          const cold: StartSample[] = [];
          const baseline: BaselineSample[] = [];
          for (let i = 0; i < Math.max(args.n, baselineRuns) && !aborted(); i++) {
            for (const mode of i % 2 ? [...MODES].reverse() : MODES) {
              if (i < baselineRuns) baseline.push(await runBaselineOnce(receiver, mode, true));
              if (i < args.n) cold.push(await measureStart(berth, events, mode, false));
              if (i < baselineRuns) baseline.push(await runBaselineOnce(receiver, mode, false));
            }
            if (i % 5 === 4) {
              const last = cold.slice(-2).map((s) => `${s.mode} ${fmtMs(s.startedSeenMs)}${s.error ? ` (${s.error})` : ''}`).join(', ');
              log(`  ${i + 1}/${args.n}: ${last}; baseline ${baseline.filter((s) => s.bound).slice(-2).map((s) => `${s.mode} ${fmtMs(s.callbackMs)}${s.error ? ` (${s.error})` : ''}`).join(', ')}`);
            }
          }
          json.cold = cold;
          json.baseline = baseline;
          const loadAfter = loadAverage();
          report.push(`## Cold start (pool disabled), ${args.n} per mode, one at a time, alternating modes; ${baselineRuns} engine baselines per mode and environment (bound, unbound) interleaved`, '');
          for (const mode of MODES) {
            const failed = cold.filter((s) => s.mode === mode && s.error);
            const failedBase = baseline.filter((s) => s.mode === mode && s.error);
            report.push(`### ${mode}`, '', markdownTable(STATS_HEADER, startRows(cold, mode)), '', `Engine baseline, ${mode}:`, '', markdownTable(STATS_HEADER, baselineRows(baseline, mode)), '');
            if (failed.length || failedBase.length) report.push(`Failed: ${failed.length} Berth (${failed.map((s) => s.error).join('; ')}), ${failedBase.length} baseline (${failedBase.map((s) => s.error).join('; ')})`, '');
          }
          report.push(`Load average after: ${loadAfter.load1}/${loadAfter.load5}/${loadAfter.load15}.`, '');
        });
        if (phases.has('cdp') && !aborted()) await guarded('CDP round trip', report, async () => {
          const results: CdpResult[] = [];
          for (const mode of MODES) {
            log(`CDP round trip, ${mode}: ${args['cdp-iterations']} Runtime.evaluate('1') each way`);
            results.push(await measureCdp(berth, mode));
          }
          json.cdp = results.map(({ samplesDirect, samplesGateway, ...rest }) => ({ ...rest, p999Direct: pct(samplesDirect, 0.999), p999Gateway: pct(samplesGateway, 0.999) }));
          const header = ['path', 'n', 'p50 µs', 'p90 µs', 'p99 µs', 'p99.9 µs', 'max µs', 'mean µs'];
          report.push(`## CDP round trip: \`Runtime.evaluate('1')\` on the page, one at a time (raw WebSocket, flat session)`, '');
          for (const r of results) {
            const row = (label: string, s: Stats | null, samples: number[]) =>
              s ? [label, String(s.n), fmtUs(s.p50), fmtUs(pct(samples, 0.9)), fmtUs(s.p99), fmtUs(pct(samples, 0.999)), fmtUs(s.max), fmtUs(s.mean)] : [label, '0', '-', '-', '-', '-', '-', '-'];
            report.push(
              `### ${r.mode}`,
              '',
              markdownTable(header, [
                row('direct to the agent (X-Berth-Secret)', r.direct, r.samplesDirect),
                row('through the gateway (`cdp_url?token=`)', r.gateway, r.samplesGateway),
                ['**gateway - direct**', '', fmtUs(r.gateway!.p50 - r.direct!.p50), fmtUs(pct(r.samplesGateway, 0.9) - pct(r.samplesDirect, 0.9)), fmtUs(r.gateway!.p99 - r.direct!.p99), fmtUs(pct(r.samplesGateway, 0.999) - pct(r.samplesDirect, 0.999)), '', fmtUs(r.gateway!.mean - r.direct!.mean)],
              ]),
              '',
              `WebSocket handshake (20 each): direct p50 ${fmtUs(r.handshakeDirect?.p50)} µs, through the gateway p50 ${fmtUs(r.handshakeGateway?.p50)} µs (p95 ${fmtUs(r.handshakeDirect?.p95)} / ${fmtUs(r.handshakeGateway?.p95)} µs).`,
              '',
            );
          }
        });
        if (phases.has('memory') && !aborted()) await guarded('idle memory', report, async () => {
          const steps = String(args['memory-steps']).split(',').map(Number).filter((n) => n > 0);
          const memory = await measureMemory(berth, steps);
          json.memory = memory;
          const header = [
            'mode', 'sessions', 'create s', 'host MemAvailable drop MiB', '**per session MiB**', 'marginal MiB', 'cgroup usage mean (min-max) MiB', 'cgroup anon+shmem mean MiB', 'cgroup cache (v1: incl. shmem) mean MiB',
            'processes\' PSS: anon+shmem (all) mean MiB', 'processes', 'shim PSS (RSS) mean MiB', '**cgroup + shim PSS mean MiB**', 'idle CPU % of a core: all sessions / Berth', 'Berth RSS MiB', 'load 1/5/15', 'other containers',
          ];
          const m = (b: number) => (b / MiB).toFixed(1);
          report.push(`## Idle memory (cgroup ${memory.steps[0]?.cgroupVersion ?? '?'}), settle ${args['settle-s']} s, idle CPU over ${args['cpu-window-s']} s`, '');
          report.push(
            markdownTable(
              header,
              memory.steps.map((s) => [
                s.mode, s.sessions, s.createSeconds.toFixed(1), m(s.hostUsed), `**${m(s.perSession)}**`, s.marginal === null ? '-' : m(s.marginal), `${m(s.usageMean)} (${m(s.usageMin)}-${m(s.usageMax)})`,
                m(s.anonShmemMean), m(s.cacheMean), `${m(s.processPssAnonShmemMean)} (${m(s.processPssMean)})`, round1(s.processesMean), `${m(s.shimPssMean)} (${m(s.shimRssMean)})`, `**${m(s.cgroupPlusShimMean)}**`,
                `${s.idleCpuPctSessions.toFixed(1)} / ${s.idleCpuPctBerth.toFixed(1)}`, m(s.berthRss), s.load, s.foreign,
              ]),
            ),
            '',
          );
          for (const mode of MODES) {
            const last = memory.steps.filter((s) => s.mode === mode).at(-1);
            if (!last) continue;
            const fixed = last.berthRss + last.dockerd + last.containerd;
            const byMemory = Math.floor((args['host-gib'] * GiB - args['headroom-gib'] * GiB - fixed) / last.perSession);
            const cpuPerSession = last.idleCpuPctSessions / last.sessions;
            report.push(
              `- **Projection (not a measurement)**, ${mode}: (${args['host-gib']} GiB - ${args['headroom-gib']} GiB headroom - ${m(fixed)} MiB Berth + engine) / ${m(last.perSession)} MiB per session (host drop at ${last.sessions}) = **${byMemory} idle ${mode} browsers** by memory; idle CPU ${cpuPerSession.toFixed(2)} % of a core per session, so ${byMemory} of them would use ${((cpuPerSession * byMemory) / 100).toFixed(2)} of 2 cores.`,
            );
          }
          for (const note of memory.notes) report.push(`- note: ${note}`);
          report.push('');
        });
      });
    }

    if (phases.has('warm') && !aborted()) await guarded('warm pool', report, () =>
      withBerth(`browsers-${stamp}-warm`, { POOL_BROWSERS_HEADLESS: '2', POOL_BROWSERS_HEADFUL: '2' }, dist.dir, async (berth) => {
        log('warm pool: waiting for 2 headless + 2 headful warm');
        await waitFor(() => poolFull(berth), 180_000, 'the warm pool to fill', 250);
        const warm: StartSample[] = [];
        for (let i = 0; i < args['warm-n'] && !aborted(); i++) {
          for (const mode of i % 2 ? [...MODES].reverse() : MODES) {
            await waitFor(() => poolFull(berth), 120_000, 'the warm pool to refill', 100);
            await sleep(500);
            warm.push(await measureStart(berth, events, mode, true));
          }
        }
        json.warm = warm;
        report.push(`## Warm pool (POOL_BROWSERS_HEADLESS=2, POOL_BROWSERS_HEADFUL=2), ${args['warm-n']} claims per mode, each with the pool full`, '');
        for (const mode of MODES) {
          const failed = warm.filter((s) => s.mode === mode && s.error);
          report.push(`### ${mode}`, '', markdownTable(STATS_HEADER, startRows(warm, mode)), '');
          if (failed.length) report.push(`Failed: ${failed.length} (${failed.map((s) => s.error).join('; ')})`, '');
        }
      }),
    );
  } finally {
    events.stop();
    receiver.close();
    const left = await removeBenchContainers();
    if (left) log(`removed ${left} containers left at the end`);
    dist.remove();
  }
  const loadEnd = loadAverage();
  report.push(`Load average at the end: ${loadEnd.load1}/${loadEnd.load5}/${loadEnd.load15}; other containers on the engine: ${await foreignContainers()}.`);
  json.loadEnd = loadEnd;
  const jsonFile = writeJson(`browsers-${stamp}.json`, json);
  const mdFile = writeText(`browsers-${stamp}.md`, report.join('\n'));
  console.log(report.join('\n'));
  console.log(`\nResults: ${mdFile} (samples: ${path.relative(process.cwd(), jsonFile)})`);
}

main().catch(async (error) => {
  log(`failed: ${(error as Error).stack ?? error}`);
  await removeBenchContainers().catch(() => undefined);
  process.exit(1);
});
