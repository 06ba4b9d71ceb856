/**
 * Shared plumbing for the benchmarks in bench/: starting a private Berth from
 * the built dist/, an HTTP client with precise timings, the WebSocket echo
 * check, percentiles, host/engine memory readings and clean-up.
 *
 * Everything here talks to 127.0.0.1 only (Berth, Postgres, Redis, the
 * session containers on the host network) and to the local Docker socket.
 * Every wait is bounded: nothing loops forever.
 */
import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, WriteStream } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import Docker from 'dockerode';
import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import WebSocket from 'ws';
import { freePort, sleep } from '../test/support/net';

export const ROOT = path.resolve(__dirname, '..');
export const RESULTS_DIR = path.join(ROOT, 'bench', 'results');

/** Names that keep the bench apart from every other install on this host. */
export const BENCH = {
  instance: process.env.BENCH_INSTANCE ?? 'bench',
  queuePrefix: process.env.BENCH_QUEUE_PREFIX ?? 'berth-bench',
  database: process.env.BENCH_DATABASE ?? 'berth_bench',
  pgPort: 5432,
  terminalImage: process.env.BENCH_TERMINAL_IMAGE ?? 'berth/terminal:latest',
  browserImage: process.env.BENCH_BROWSER_IMAGE ?? 'berth/browser:latest',
  baseImage: process.env.BENCH_BASE_IMAGE ?? 'debian:bookworm-slim',
  /**
   * Host ports of the bench's sessions: its own range, below the kernel's ephemeral
   * ports and apart from the tests' default (20000-29999, another database's
   * bookkeeping) and the chaos run's (30000-30999).
   */
  portRange: process.env.BENCH_PORT_RANGE ?? '31000-31999',
  /** Fresh per run: the admin key the benchmarks call the API with, and the install's secret. */
  adminKey: `bench-admin-${randomBytes(24).toString('hex')}`,
  secretKey: randomBytes(32).toString('hex'),
};

/** The admin key's Authorization header (the default tenant's key). */
export const ADMIN = { authorization: `Bearer ${BENCH.adminKey}` };

/**
 * Where Postgres and Redis are, with their credentials: BENCH_DATABASE_URL /
 * BENCH_REDIS_URL if set, else what scripts/service-urls.sh prints (the services
 * ensure-services.sh runs, with their generated passwords), else the old defaults
 * (berth/berth, no Redis password). Only loopback addresses are accepted.
 */
function resolveServiceUrls(): { databaseUrl: string; redisUrl: string } {
  let databaseUrl = `postgres://berth:berth@127.0.0.1:${BENCH.pgPort}/${BENCH.database}`;
  let redisUrl = 'redis://127.0.0.1:6379';
  const script = path.join(ROOT, 'scripts', 'service-urls.sh');
  if ((!process.env.BENCH_DATABASE_URL || !process.env.BENCH_REDIS_URL) && existsSync(script)) {
    try {
      const out = execFileSync('bash', [script, BENCH.database], { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] });
      databaseUrl = out.match(/^DATABASE_URL=(.+)$/m)?.[1]?.trim() ?? databaseUrl;
      redisUrl = out.match(/^REDIS_URL=(.+)$/m)?.[1]?.trim() ?? redisUrl;
    } catch {
      // no credentials file: the services run with the defaults
    }
  }
  databaseUrl = process.env.BENCH_DATABASE_URL ?? databaseUrl;
  redisUrl = process.env.BENCH_REDIS_URL ?? redisUrl;
  for (const url of [databaseUrl, redisUrl]) {
    const host = new URL(url).hostname;
    if (!(host === 'localhost' || host.startsWith('127.') || host === '[::1]')) throw new Error(`benchmarks only talk to loopback; refusing ${host}`);
  }
  return { databaseUrl, redisUrl };
}
export const { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL } = resolveServiceUrls();

export const docker = new Docker({ socketPath: '/var/run/docker.sock', version: 'v1.41' });

export { sleep };
export const now = () => performance.now();
export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

export function log(...parts: unknown[]): void {
  // Progress goes to stderr; stdout is reserved for the markdown report.
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${parts.join(' ')}\n`);
}

// ---------------------------------------------------------------------------- arguments

export function parseArgs<T extends Record<string, string | number | boolean>>(argv: string[], defaults: T): T {
  const out: Record<string, string | number | boolean> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      console.log(`options (defaults): ${Object.entries(defaults).map(([k, v]) => `--${k} ${v}`).join(' ')}`);
      process.exit(0);
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    let [key, value] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (!(key in defaults)) throw new Error(`unknown option --${key}`);
    const kind = typeof defaults[key];
    if (kind === 'boolean' && value === undefined) {
      out[key] = true;
      continue;
    }
    if (value === undefined) value = argv[++i];
    if (value === undefined) throw new Error(`--${key} needs a value`);
    if (kind === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`--${key} must be a number`);
      out[key] = n;
    } else if (kind === 'boolean') out[key] = ['1', 'true', 'yes'].includes(value);
    else out[key] = value;
  }
  return out as T;
}

/** `--env KEY=VALUE,KEY=VALUE`: extra environment for Berth (e.g. SESSION_CPUS=1). */
export function parseEnvList(list: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of list.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--env expects KEY=VALUE pairs, got ${pair}`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

// ---------------------------------------------------------------------------- statistics

export interface Stats {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles (no interpolation): p99 of 60 samples is the largest one. */
export function stats(values: number[]): Stats | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const q = (p: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
  return {
    n: v.length,
    p50: q(0.5),
    p95: q(0.95),
    p99: q(0.99),
    min: v[0],
    max: v[v.length - 1],
    mean: v.reduce((a, b) => a + b, 0) / v.length,
  };
}

export const fmtMs = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '-' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)}`);
export const fmtMiB = (bytes: number) => `${(bytes / MiB).toFixed(1)}`;

export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function statsRow(label: string, s: Stats | null): string[] {
  if (!s) return [label, '0', '-', '-', '-', '-', '-', '-'];
  return [label, String(s.n), fmtMs(s.p50), fmtMs(s.p95), fmtMs(s.p99), fmtMs(s.min), fmtMs(s.max), fmtMs(s.mean)];
}
export const STATS_HEADER = ['metric (ms)', 'n', 'p50', 'p95', 'p99', 'min', 'max', 'mean'];

// ---------------------------------------------------------------------------- machine

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '(unavailable)';
  }
}

export function loadAverage(): { load1: number; load5: number; load15: number; uptime: string } {
  const [load1, load5, load15] = os.loadavg();
  return { load1: round2(load1), load5: round2(load5), load15: round2(load15), uptime: run('uptime', []) };
}
const round2 = (x: number) => Math.round(x * 100) / 100;

/** Busy share of all CPUs over `ms` (from /proc/stat; iowait counts as idle). */
export async function cpuBusyShare(ms = 1000): Promise<number> {
  const read = () => {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { busy: user + nice + system + irq + softirq + (steal || 0), total: user + nice + system + idle + iowait + irq + softirq + (steal || 0) };
  };
  const a = read();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = read();
  return (b.busy - a.busy) / Math.max(1, b.total - a.total);
}

/**
 * Waits until the machine is quiet: the CPUs at most `maxBusy` busy for
 * `seconds` one-second windows in a row (at most `timeoutMs`). The engine
 * finishes removing containers (unmounts, cgroups) after its API has
 * answered; a burst started meanwhile would be measured against that work.
 * Returns the busy shares seen, for the report.
 */
export async function waitForQuiet(maxBusy = 0.1, seconds = 3, timeoutMs = 60_000): Promise<{ waitedMs: number; quiet: boolean; lastBusy: number }> {
  const start = Date.now();
  let calm = 0;
  let lastBusy = 1;
  while (Date.now() - start < timeoutMs) {
    lastBusy = await cpuBusyShare(1000);
    calm = lastBusy <= maxBusy ? calm + 1 : 0;
    if (calm >= seconds) return { waitedMs: Date.now() - start, quiet: true, lastBusy };
  }
  return { waitedMs: Date.now() - start, quiet: false, lastBusy };
}

export function machineInfo(): Record<string, string | number> {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? '(unknown)';
  return {
    nproc: run('nproc', []),
    cpuModel: cpu,
    memTotalGiB: round2(readMeminfo().total / GiB),
    freeG: run('free', ['-g']),
    kernel: run('uname', ['-r']),
    dockerVersion: run('docker', ['version', '--format', 'client {{.Client.Version}}, engine {{.Server.Version}} (API {{.Server.APIVersion}}), containerd/runc per docker info']),
    dockerInfo: run('docker', ['info', '--format', '{{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupDriver}}/v{{.CgroupVersion}} runtime={{.DefaultRuntime}}']),
    node: process.version,
    date: new Date().toISOString(),
  };
}

/** Containers on the engine that are not ours (e.g. someone's e2e run): a hint of interference. */
export async function foreignContainers(): Promise<number> {
  const all = await docker.listContainers({});
  return all.filter((c) => c.Labels?.['berth.instance'] !== BENCH.instance && c.Labels?.['berth.bench'] === undefined).length;
}

// ---------------------------------------------------------------------------- memory

export function readMeminfo(): { total: number; available: number; free: number } {
  const text = readFileSync('/proc/meminfo', 'utf8');
  const kb = (key: string) => Number(text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN) * 1024;
  return { total: kb('MemTotal'), available: kb('MemAvailable'), free: kb('MemFree') };
}

export function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

export interface Pss {
  /** Proportional set size: shared pages divided among the processes mapping them (sums correctly). */
  pss: number;
  /** Its parts: anonymous memory, file-backed pages (binaries, libraries: page cache), shmem (tmpfs). */
  anon: number;
  file: number;
  shmem: number;
}
const ZERO_PSS: Pss = { pss: 0, anon: 0, file: 0, shmem: 0 };
export const addPss = (a: Pss, b: Pss): Pss => ({ pss: a.pss + b.pss, anon: a.anon + b.anon, file: a.file + b.file, shmem: a.shmem + b.shmem });

export function pssOf(pid: number): Pss {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (key: string) => Number(rollup.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0) * 1024;
    return { pss: kb('Pss'), anon: kb('Pss_Anon'), file: kb('Pss_File'), shmem: kb('Pss_Shmem') };
  } catch {
    return { ...ZERO_PSS };
  }
}

export interface EngineMemory {
  dockerd: number;
  containerd: number;
  /** Every containerd shim on the host (all containers, ours or not), RSS. */
  shimsAll: number;
  shimCountAll: number;
  /** Only the shims of the given container ids: RSS (shared pages counted in each) and PSS (shared pages divided). */
  shimsOurs: number;
  shimsOursPss: Pss;
  shimCountOurs: number;
}

/** dockerd + containerd + shims, from /proc (RSS; for our shims also PSS). */
export function engineMemory(containerIds: Set<string>): EngineMemory {
  const out: EngineMemory = { dockerd: 0, containerd: 0, shimsAll: 0, shimCountAll: 0, shimsOurs: 0, shimsOursPss: { ...ZERO_PSS }, shimCountOurs: 0 };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue;
    }
    if (argv.length === 0) continue;
    const exe = path.basename(argv[0]);
    const rss = rssOf(Number(entry));
    if (exe === 'dockerd') out.dockerd += rss;
    else if (exe === 'containerd') out.containerd += rss;
    else if (exe.startsWith('containerd-shim')) {
      out.shimsAll += rss;
      out.shimCountAll++;
      const idIndex = argv.indexOf('-id');
      const id = idIndex >= 0 ? argv[idIndex + 1] : '';
      if (id && containerIds.has(id)) {
        out.shimsOurs += rss;
        out.shimsOursPss = addPss(out.shimsOursPss, pssOf(Number(entry)));
        out.shimCountOurs++;
      }
    }
  }
  return out;
}

/**
 * PSS of every process inside each container (found through its memory cgroup):
 * the processes' own share of memory, shared library pages split fairly between
 * containers. Supports cgroup v1 (cgroupfs driver) and v2 layouts.
 */
export function containerProcessPss(containerIds: string[]): { total: Pss; perContainer: Pss[]; found: number } {
  const perContainer: Pss[] = [];
  for (const id of containerIds) {
    const candidates = [
      `/sys/fs/cgroup/memory/docker/${id}/cgroup.procs`,
      `/sys/fs/cgroup/docker/${id}/cgroup.procs`,
      `/sys/fs/cgroup/system.slice/docker-${id}.scope/cgroup.procs`,
      `/sys/fs/cgroup/memory/system.slice/docker-${id}.scope/cgroup.procs`,
    ];
    const file = candidates.find((c) => existsSync(c));
    if (!file) continue;
    const pids = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
    perContainer.push(pids.reduce((sum, pid) => addPss(sum, pssOf(pid)), { ...ZERO_PSS }));
  }
  return { total: perContainer.reduce(addPss, { ...ZERO_PSS }), perContainer, found: perContainer.length };
}

// ---------------------------------------------------------------------------- CPU time

let clockTicks = 0;
/** CPU seconds (user + system) a process has used so far. */
export function processCpuSeconds(pid: number): number {
  if (!clockTicks) clockTicks = Number(run('getconf', ['CLK_TCK'])) || 100;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks; // utime, stime (fields 14 and 15)
  } catch {
    return 0;
  }
}

/** CPU seconds of dockerd + containerd + every containerd shim. */
export function engineCpuSeconds(): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let exe: string;
    try {
      exe = path.basename(readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0] ?? '');
    } catch {
      continue;
    }
    if (exe === 'dockerd' || exe === 'containerd' || exe.startsWith('containerd-shim')) total += processCpuSeconds(Number(entry));
  }
  return total;
}

/** CPU seconds used by the containers (their cgroups), summed. cgroup v1 cpuacct or v2 cpu.stat. */
export function containersCpuSeconds(containerIds: string[]): number {
  let total = 0;
  for (const id of containerIds) {
    const v1 = [`/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, `/sys/fs/cgroup/cpu,cpuacct/docker/${id}/cpuacct.usage`].find((f) => existsSync(f));
    if (v1) {
      total += Number(readFileSync(v1, 'utf8')) / 1e9;
      continue;
    }
    const v2 = [`/sys/fs/cgroup/docker/${id}/cpu.stat`, `/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`].find((f) => existsSync(f));
    if (v2) total += Number(readFileSync(v2, 'utf8').match(/^usage_usec (\d+)/m)?.[1] ?? 0) / 1e6;
  }
  return total;
}

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: MiB, GiB: GiB, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9 };

export function parseDockerSize(text: string): number {
  const m = text.trim().match(/^([\d.]+)\s*([A-Za-z]+)$/);
  if (!m) return NaN;
  return Number(m[1]) * (UNITS[m[2]] ?? NaN);
}

/** `docker stats --no-stream` for the named containers: name -> memory usage in bytes. */
export async function dockerStatsMemory(names: string[]): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  if (names.length === 0) return result;
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      'docker',
      ['stats', '--no-stream', '--format', '{{.Name}}\t{{.MemUsage}}', ...names],
      { timeout: 180_000, maxBuffer: 16 * MiB },
      (error, out) => (error ? reject(error) : resolve(out)),
    ),
  );
  for (const line of stdout.split('\n')) {
    const [name, usage] = line.split('\t');
    if (!name || !usage) continue;
    result.set(name.trim(), parseDockerSize(usage.split('/')[0]));
  }
  return result;
}

// ---------------------------------------------------------------------------- bench state

function asPostgres(sql: string, database = 'postgres'): string {
  return execFileSync('runuser', ['-u', 'postgres', '--', 'psql', '-p', String(BENCH.pgPort), '-d', database, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], {
    encoding: 'utf8',
    timeout: 30_000,
    cwd: '/',
  }).trim();
}

/** Creates the bench database if missing and empties it of earlier runs' sessions. */
export async function prepareDatabase(): Promise<void> {
  if (asPostgres(`SELECT 1 FROM pg_database WHERE datname = '${BENCH.database}'`) !== '1') {
    log(`creating database ${BENCH.database} owned by berth`);
    asPostgres(`CREATE DATABASE ${BENCH.database} OWNER berth`);
  }
  const client = new PgClient({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    const exists = await client.query(`SELECT to_regclass('public.sessions') AS t`);
    if (exists.rows[0].t) await client.query('DELETE FROM sessions');
  } finally {
    await client.end();
  }
}

/** Deletes every BullMQ key under the bench prefix (left-over delayed expiry jobs of earlier runs). */
export async function clearQueues(): Promise<number> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  let removed = 0;
  try {
    let cursor = '0';
    for (let guard = 0; guard < 100_000; guard++) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${BENCH.queuePrefix}:*`, 'COUNT', 500);
      if (keys.length) removed += await redis.del(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    redis.disconnect();
  }
  return removed;
}

/** Force-removes every container labelled with the bench instance (or the bench baseline label). */
export async function removeBenchContainers(): Promise<number> {
  const filters = [{ label: [`berth.instance=${BENCH.instance}`] }, { label: ['berth.bench'] }];
  let removed = 0;
  for (const filter of filters) {
    const list = await docker.listContainers({ all: true, filters: filter });
    await Promise.all(
      list.map(async (c) => {
        await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
        removed++;
      }),
    );
  }
  return removed;
}

export async function benchContainerCount(): Promise<number> {
  return (await docker.listContainers({ all: true, filters: { label: [`berth.instance=${BENCH.instance}`] } })).length;
}

export async function requireImage(image: string, hint: string): Promise<void> {
  try {
    await docker.getImage(image).inspect();
  } catch {
    throw new Error(`image ${image} is missing: ${hint}`);
  }
}

/**
 * A private copy of dist/: `nest build` deletes and rewrites dist/ (deleteOutDir),
 * and other people may rebuild while a benchmark runs. The copy lives under
 * bench/results/ (gitignored) so node_modules still resolves from the repo root.
 */
export function snapshotDist(): { dir: string; remove(): void } {
  const source = path.join(ROOT, 'dist');
  if (!existsSync(path.join(source, 'src', 'main.js')) || !existsSync(path.join(source, 'src', 'worker.js'))) {
    throw new Error('dist/src/main.js missing: run `npx nest build` first (scripts/bench.sh does)');
  }
  mkdirSync(RESULTS_DIR, { recursive: true });
  const dir = path.join(RESULTS_DIR, `.dist-${process.pid}`);
  cpSync(source, dir, { recursive: true });
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export { freePort };

// ---------------------------------------------------------------------------- Berth

/** Per-session wall-clock timestamps (ms) from Berth's JSON logs, keyed by log message. */
export type SessionLogEvents = Map<string, Record<string, number>>;

export interface BerthProcess {
  role: 'all' | 'api' | 'worker';
  child: ChildProcess;
}

export interface RunningBerth {
  mode: 'combined' | 'split';
  url: string;
  processes: BerthProcess[];
  events: SessionLogEvents;
  problems: string[];
  rss(): number;
  stop(): Promise<void>;
}

export interface StartBerthOptions {
  mode: 'combined' | 'split';
  distDir: string;
  env?: Record<string, string>;
  logName: string;
}

const BERTH_VARIABLE =
  /^(HOST|PORT|PUBLIC_URL|CALLBACK_URL|CORS_ORIGINS|RUN_WORKER_IN_API|DATABASE_.*|RUN_MIGRATIONS_ON_START|REDIS_URL|QUEUE_PREFIX|CONTAINER_PLATFORM|TERMINAL_.*|CLEANUP_.*|START_TIMEOUT_SECONDS|PROVISION_.*|WORKER_CONCURRENCY|SHUTDOWN_TIMEOUT_SECONDS|BERTH_.*|SESSION_.*|DOCKER_.*|K8S_.*|LOG_LEVEL|LOG_FORMAT|POOL_.*|BROWSER_.*|RATE_LIMIT_.*|MAX_.*|IDLE_.*|EXPIRING_SOON_SECONDS|GATEWAY_.*|RUN_GATEWAY_IN_API|ACTIVITY_.*|WEBHOOK_.*|START_URL_ALLOW|PERSISTENT_VOLUME_MB)$/;

export async function startBerth(options: StartBerthOptions): Promise<RunningBerth> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // Berth's own variables are not inherited from the caller's shell (a stray SESSION_CPUS would
  // silently change the results): Berth's defaults apply, plus what is set here and --env.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !BERTH_VARIABLE.test(key)));
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    // Not the developer's .env in the repository (Berth reads it from its working directory).
    BERTH_ENV_FILE: '/dev/null',
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: url,
    CALLBACK_URL: `${url}/api/v1/callbacks`,
    DATABASE_URL,
    REDIS_URL: REDIS_URL,
    QUEUE_PREFIX: BENCH.queuePrefix,
    BERTH_INSTANCE: BENCH.instance,
    TERMINAL_IMAGE: BENCH.terminalImage,
    BROWSER_IMAGE: BENCH.browserImage,
    BERTH_SECRET_KEY: BENCH.secretKey,
    BERTH_ADMIN_KEY: BENCH.adminKey,
    SESSION_PORT_RANGE: BENCH.portRange,
    CONTAINER_PLATFORM: 'docker',
    DOCKER_NETWORK: 'host',
    DOCKER_ADVERTISE_HOST: '127.0.0.1',
    LOG_LEVEL: 'log', // the per-session timeline comes from the `log`-level lines
    LOG_FORMAT: 'json',
    // The benchmarks make thousands of calls with one key.
    RATE_LIMIT_PER_MINUTE: '1000000',
    RUN_WORKER_IN_API: options.mode === 'combined' ? 'true' : 'false',
    ...options.env,
  };
  const events: SessionLogEvents = new Map();
  const problems: string[] = [];
  const processes: BerthProcess[] = [];
  let workerReady = false;
  let stopping = false;
  mkdirSync(RESULTS_DIR, { recursive: true });

  const launch = (role: BerthProcess['role'], script: string) => {
    const logFile: WriteStream = createWriteStream(path.join(RESULTS_DIR, `${options.logName}-${role}.log`));
    const child = spawn(process.execPath, [path.join(options.distDir, 'src', script)], { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    child.stderr!.pipe(logFile, { end: false });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      logFile.write(line + '\n');
      let entry: { level?: string; timestamp?: number; message?: unknown };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      const message = entry.message as { msg?: string; sessionId?: string } | string | undefined;
      if (entry.level === 'warn' || entry.level === 'error' || entry.level === 'fatal') {
        if (problems.length < 200) problems.push(`${role}: ${typeof message === 'string' ? message : JSON.stringify(message)}`);
      }
      if (message && typeof message === 'object' && message.sessionId && message.msg && entry.timestamp) {
        const record = events.get(message.sessionId) ?? {};
        record[message.msg] ??= entry.timestamp;
        events.set(message.sessionId, record);
      }
      if (typeof message === 'object' && message?.msg === 'Berth worker running') workerReady = true;
    });
    child.on('exit', () => logFile.end());
    processes.push({ role, child });
    return child;
  };

  const stop = async () => {
    await Promise.all(
      processes.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 40_000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  };

  try {
    launch(options.mode === 'combined' ? 'all' : 'api', 'main.js');
    await waitFor(async () => (await request('GET', `${url}/health`)).status === 200, 60_000, 'Berth API /health');
    if (options.mode === 'split') {
      launch('worker', 'worker.js');
      await waitFor(async () => workerReady, 60_000, 'Berth worker');
    }
  } catch (error) {
    await stop();
    throw error;
  }
  for (const { child, role } of processes) {
    child.on('exit', (code, signal) => {
      if (!stopping) problems.push(`${role} exited unexpectedly (code ${code}, signal ${signal})`);
    });
  }
  return {
    mode: options.mode,
    url,
    processes,
    events,
    problems,
    rss: () => processes.reduce((sum, p) => sum + (p.child.pid ? rssOf(p.child.pid) : 0), 0),
    stop: async () => {
      stopping = true;
      await stop();
    },
  };
}

export async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, what: string, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (error) {
      last = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

// ---------------------------------------------------------------------------- HTTP

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export interface TimedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** performance.now() when the response headers (first byte) arrived / when the body was complete. */
  tFirstByte: number;
  tEnd: number;
}

type RequestOptions = { body?: unknown; headers?: Record<string, string>; timeoutMs?: number; agent?: http.Agent | false };

/**
 * One HTTP request with precise timings. A GET or DELETE that fails because
 * the server closed the kept-alive connection just as it was reused (its
 * keep-alive timeout) is sent once more on a new one, as Node's docs advise.
 */
export async function request(method: string, url: string, options: RequestOptions = {}): Promise<TimedResponse> {
  try {
    return await requestOnce(method, url, options);
  } catch (error) {
    if (!(error as { reusedSocket?: boolean }).reusedSocket || !['GET', 'DELETE', 'HEAD'].includes(method)) throw error;
    return requestOnce(method, url, options);
  }
}

function requestOnce(method: string, url: string, options: RequestOptions): Promise<TimedResponse> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: options.agent ?? agent, timeout: options.timeoutMs ?? 15_000 }, (res) => {
      const tFirstByte = now();
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), tFirstByte, tEnd: now() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', (error: Error & { code?: string; reusedSocket?: boolean }) => {
      if (req.reusedSocket && error.code === 'ECONNRESET') error.reusedSocket = true;
      reject(error);
    });
    req.end(payload);
  });
}

export interface SessionView {
  id: string;
  kind: string;
  status: string;
  /** The session's own origin, `http://{id}.localhost:PORT/` (pages, cookies). */
  tunnel_url: string | null;
  /** `http://127.0.0.1:PORT/s/{id}/`: what programs use. */
  path_url: string | null;
  cdp_url: string | null;
  container_id: string | null;
  container_name: string | null;
  error_message: string | null;
  created_at: string;
  started_at: string | null;
}

export interface CreatedSession extends SessionView {
  access_token: string;
}

/**
 * POST /api/v1/{terminals|browsers}: 202 (queued, cold) or 201 (started from
 * the warm pool, in this very response). Anything else throws.
 */
export async function createSession(apiUrl: string, kind: 'terminals' | 'browsers', body: Record<string, unknown> = {}): Promise<{ session: CreatedSession; res: TimedResponse }> {
  const res = await request('POST', `${apiUrl}/api/v1/${kind}`, { body, headers: ADMIN });
  if (res.status !== 202 && res.status !== 201) throw new Error(`POST /api/v1/${kind} answered ${res.status}: ${res.body.slice(0, 300)}`);
  return { session: JSON.parse(res.body), res };
}

export async function createTerminal(apiUrl: string, body: Record<string, unknown> = {}): Promise<{ session: CreatedSession; res: TimedResponse }> {
  return createSession(apiUrl, 'terminals', body);
}

/** GET /api/v1/sessions/{id}; with waitSeconds the API answers as soon as the session is `started` (or ended). */
export async function getSession(apiUrl: string, id: string, waitSeconds = 0): Promise<{ session: SessionView; res: TimedResponse }> {
  const res = await request('GET', `${apiUrl}/api/v1/sessions/${id}${waitSeconds ? `?wait_seconds=${waitSeconds}` : ''}`, {
    headers: ADMIN,
    timeoutMs: (waitSeconds + 15) * 1000,
  });
  if (res.status !== 200) throw new Error(`GET /api/v1/sessions/${id} answered ${res.status}: ${res.body.slice(0, 300)}`);
  return { session: JSON.parse(res.body), res };
}

export async function getTerminal(apiUrl: string, id: string): Promise<{ session: SessionView; res: TimedResponse }> {
  return getSession(apiUrl, id);
}

/**
 * POST, then (unless the POST already answered `started`) GET with
 * wait_seconds until the session is `started`: what a client does. Times are
 * performance.now() values; `started` is when the answer saying so arrived.
 */
export async function launchUntilStarted(
  apiUrl: string,
  kind: 'terminals' | 'browsers' = 'terminals',
  body: Record<string, unknown> = {},
  timeoutMs = 120_000,
): Promise<{ session: CreatedSession; t0: number; tPost: number; tStarted: number; postStatus: number; fromPool: boolean }> {
  const t0 = now();
  const { session, res } = await createSession(apiUrl, kind, body);
  const tPost = res.tEnd;
  let view: SessionView = session;
  while (view.status !== 'started') {
    if (!['pending', 'starting'].includes(view.status)) throw new Error(`session ${session.id} became ${view.status}: ${view.error_message}`);
    if (now() - t0 > timeoutMs) throw new Error(`session ${session.id} not started within ${timeoutMs} ms`);
    const got = await getSession(apiUrl, session.id, Math.min(60, Math.ceil(timeoutMs / 1000)));
    view = got.session;
    if (view.status === 'started') return { session: { ...session, ...view }, t0, tPost, tStarted: got.res.tEnd, postStatus: res.status, fromPool: false };
  }
  return { session, t0, tPost, tStarted: tPost, postStatus: res.status, fromPool: res.status === 201 };
}

export async function deleteSession(apiUrl: string, id: string): Promise<void> {
  const res = await request('DELETE', `${apiUrl}/api/v1/sessions/${id}`, { headers: ADMIN });
  if (res.status !== 200) throw new Error(`DELETE /api/v1/sessions/${id} answered ${res.status}: ${res.body.slice(0, 300)}`);
}
export const deleteTerminal = deleteSession;

/**
 * What a browser does with the link: the session's own origin
 * (`{id}.localhost:PORT`, reached at 127.0.0.1 with that Host header: Node's
 * resolver does not know `.localhost`) with `?token=` answers 303 with the
 * cookie, then `/` with the cookie answers 200 with the page. Fresh
 * connections (a new origin for the browser). Returns the page's first byte time.
 */
export async function fetchTerminalPage(tunnelUrl: string, token: string): Promise<{ t303: number; tPage: number; tPageEnd: number }> {
  const origin = new URL(tunnelUrl);
  const direct = `http://127.0.0.1:${origin.port || 80}`;
  const headers = { host: origin.host };
  const pageAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await request('GET', `${direct}/?token=${encodeURIComponent(token)}`, { agent: pageAgent, headers });
    if (first.status !== 303) throw new Error(`terminal ?token= answered ${first.status}, expected 303`);
    const cookie = String(first.headers['set-cookie']?.[0] ?? '').split(';')[0];
    const location = new URL(String(first.headers.location ?? '/'), direct);
    const page = await request('GET', `${direct}${location.pathname}${location.search}`, { agent: pageAgent, headers: { ...headers, cookie } });
    if (page.status !== 200 || !page.body.includes('<')) throw new Error(`terminal page answered ${page.status}`);
    return { t303: first.tFirstByte, tPage: page.tFirstByte, tPageEnd: page.tEnd };
  } finally {
    pageAgent.destroy();
  }
}

/**
 * Opens `<baseUrl>ws` (a session's path_url through the gateway, with its
 * access token; or an agent directly, with its secret header), types `echo ok` and waits for
 * the shell's output line `ok` (the typed command is echoed by the terminal
 * too, but as `echo ok`: only the output has `ok` at the start of a line;
 * bash's bracketed-paste escape ends with a bare CR right before it).
 */
export function websocketEcho(baseUrl: string, token: string, timeoutMs = 15_000, headers: Record<string, string> = { Authorization: `Bearer ${token}` }): Promise<{ tOpen: number; tEcho: number }> {
  const wsUrl = `${baseUrl.replace(/^http/, 'ws').replace(/\/?$/, '/')}ws`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { headers, perMessageDeflate: false });
    let tOpen = 0;
    let output = '';
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no echo from ${wsUrl} within ${timeoutMs} ms (output so far: ${JSON.stringify(output.slice(-200))})`));
    }, timeoutMs);
    ws.on('open', () => {
      tOpen = now();
      ws.send(JSON.stringify({ type: 'input', data: 'echo ok\r' }));
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      output += isBinary ? data.toString('utf8') : String(data);
      if (/[\r\n]ok\r?\n/.test(output)) {
        const tEcho = now();
        clearTimeout(timer);
        ws.close();
        resolve({ tOpen, tEcho });
      }
    });
    ws.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    ws.on('close', (code) => {
      if (!tOpen) {
        clearTimeout(timer);
        reject(new Error(`WebSocket closed before opening (code ${code})`));
      }
    });
  });
}

// ---------------------------------------------------------------------------- docker events

/** Container create/start/die/destroy times (ms, wall clock) for the bench instance, keyed by session id. */
export class DockerEventRecorder {
  readonly bySession = new Map<string, Record<string, number>>();
  private child?: ChildProcess;

  start(): void {
    this.child = spawn('docker', ['events', '--filter', 'type=container', '--filter', `label=berth.instance=${BENCH.instance}`, '--format', '{{json .}}'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        const event = JSON.parse(line) as { Action?: string; status?: string; timeNano?: number; Actor?: { Attributes?: Record<string, string> } };
        const sessionId = event.Actor?.Attributes?.['berth.session-id'];
        const action = (event.Action ?? event.status ?? '').split(':')[0];
        if (!sessionId || !action || !event.timeNano) return;
        const record = this.bySession.get(sessionId) ?? {};
        record[action] ??= event.timeNano / 1e6;
        this.bySession.set(sessionId, record);
      } catch {
        // not an event line
      }
    });
  }

  stop(): void {
    this.child?.kill('SIGTERM');
  }
}

/** Waits until the session's container no longer exists; returns how long that took (ms), or NaN on timeout. */
export async function waitContainerGone(sessionId: string, timeoutMs = 30_000, intervalMs = 20): Promise<number> {
  const started = now();
  const deadline = started + timeoutMs;
  while (now() < deadline) {
    const list = await docker.listContainers({ all: true, filters: { label: [`berth.session-id=${sessionId}`, `berth.instance=${BENCH.instance}`] } });
    if (list.length === 0) return now() - started;
    await sleep(intervalMs);
  }
  return NaN;
}

export function randomName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export function writeJson(file: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const target = path.join(RESULTS_DIR, file);
  writeFileSync(target, JSON.stringify(data, null, 2));
  return target;
}

export function writeText(file: string, text: string): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const target = path.join(RESULTS_DIR, file);
  writeFileSync(target, text.endsWith('\n') ? text : `${text}\n`);
  return target;
}

export function timestampForFile(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
}

/**
 * First Ctrl-C asks the benchmark to wind down (finish the current step, then
 * clean up); a second exits at once. Returns a probe the loops check.
 */
export function onInterrupt(message: string): () => boolean {
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(message);
  });
  return () => interrupted;
}
