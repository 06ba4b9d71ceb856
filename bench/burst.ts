/**
 * A burst of concurrent launches with the warm pool empty, against the engine's own floor.
 *
 *   npx ts-node --transpile-only bench/burst.ts [--n 50] [--rounds 3] [--floor cli,api]
 *       [--mode combined|split] [--env KEY=VALUE,...]
 *
 * Each round, one after the other on the same engine:
 *   - engine floor (`cli`): --n concurrent `docker run -d` of berth/terminal:latest with
 *     Berth's flags (bench/baselines.ts terminalRunArgs), timed from the spawn of each
 *     `docker run` to the session agent's ready callback (a stand-in server here): the
 *     point at which Berth marks a session `started`;
 *   - engine floor (`api`): the same through the engine API (create + start, dockerode),
 *     as Berth's Docker adapter does it, without the CLI's own start-up;
 *   - Berth (POOL_TERMINALS=0): --n concurrent POST /api/v1/terminals, each followed by
 *     GET ?wait_seconds until `started`; POST -> `started` per launch, failures counted.
 * Containers are removed only once the whole burst is up (so removal does not compete
 * with the burst), and the next part starts once the CPUs have been under 10 % busy for
 * 3 s. The order of the three rotates from round to round.
 * Berth's side is broken down from its JSON logs and `docker events`.
 *
 * Output: markdown on stdout, JSON in bench/results/burst-<time>.json.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes, randomUUID, createHash } from 'node:crypto';
import path from 'node:path';
import { CallbackReceiver, terminalRunArgs } from './baselines';
import {
  engineCpuSeconds,
  processCpuSeconds,
  BENCH,
  ROOT,
  benchContainerCount,
  clearQueues,
  deleteSession,
  docker,
  DockerEventRecorder,
  fmtMs,
  foreignContainers,
  freePort,
  launchUntilStarted,
  loadAverage,
  waitForQuiet,
  log,
  machineInfo,
  markdownTable,
  now,
  onInterrupt,
  parseArgs,
  parseEnvList,
  prepareDatabase,
  randomName,
  removeBenchContainers,
  requireImage,
  RunningBerth,
  sleep,
  snapshotDist,
  startBerth,
  stats,
  Stats,
  STATS_HEADER,
  statsRow,
  timestampForFile,
  waitFor,
  writeJson,
  writeText,
} from './lib';

const args = parseArgs(process.argv.slice(2), {
  n: 50,
  rounds: 3,
  floor: 'cli,api',
  mode: 'combined',
  env: '',
});
const aborted = onInterrupt('interrupted: finishing the current burst, then cleaning up (Ctrl-C again to exit at once)');

interface Burst {
  what: 'engine-cli' | 'engine-api' | 'berth';
  round: number;
  /** ms from each launch's start to its ready point. */
  ready: number[];
  /** ms from each launch's start until `docker run` returned / the POST answered. */
  returned: number[];
  failures: string[];
  wallMs: number;
  load: ReturnType<typeof loadAverage>;
  foreign: number;
  /** Berth only: per-session timeline segments (ms). */
  segments?: Record<string, number[]>;
  /** CPU-seconds spent from the first launch until the last was ready: the engine (dockerd, containerd, shims), Berth, this client (and its `docker` CLIs). */
  cpu: CpuSpent;
}

interface CpuSpent {
  engine: number;
  berth: number;
  client: number;
}

/** CPU-seconds so far of the engine, Berth's processes and this process with its children (the `docker` CLIs). */
function cpuNow(berthPids: number[]): CpuSpent {
  const self = process.cpuUsage();
  const children = readChildrenCpu();
  return {
    engine: engineCpuSeconds(),
    berth: berthPids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0),
    client: (self.user + self.system) / 1e6 + children,
  };
}

/** cutime + cstime of this process: CPU of the children it has waited for (the `docker run` CLIs). */
function readChildrenCpu(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  const ticks = 100; // USER_HZ
  return (Number(fields[13]) + Number(fields[14])) / ticks;
}

const spent = (before: CpuSpent, after: CpuSpent): CpuSpent => ({
  engine: after.engine - before.engine,
  berth: after.berth - before.berth,
  client: after.client - before.client,
});

function dockerCli(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile('docker', argv, { timeout: 120_000 }, (error, _out, stderr) => (error ? reject(new Error(stderr || error.message)) : resolve())));
}

async function removeBaselineContainers(): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: ['berth.bench=baseline'] } });
  for (let i = 0; i < list.length; i += 10) await Promise.all(list.slice(i, i + 10).map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
}

async function engineBurst(round: number, via: 'cli' | 'api'): Promise<Burst> {
  const receiver = new CallbackReceiver();
  await receiver.listen();
  const load = loadAverage();
  const foreign = await foreignContainers();
  const ports = await Promise.all(Array.from({ length: args.n }, () => freePort()));
  const ready: number[] = [];
  const returned: number[] = [];
  const failures: string[] = [];
  const cpu0 = cpuNow([]);
  const t = now();
  try {
    await Promise.all(
      ports.map(async (port) => {
        const sessionId = randomUUID();
        const secret = randomBytes(32).toString('base64url');
        const name = randomName('bench-burst');
        const callback = receiver.expect(sessionId, 120_000);
        callback.catch(() => undefined);
        const t0 = now();
        try {
          if (via === 'cli') await dockerCli(terminalRunArgs(name, { cpuLimit: true, port, secret, sessionId, callbackUrl: receiver.url }));
          else await apiRun(name, sessionId, port, secret, receiver.url);
          returned.push(now() - t0);
          ready.push((await callback).at - t0);
        } catch (error) {
          failures.push((error as Error).message.slice(0, 200));
        }
      }),
    );
  } finally {
    receiver.close();
  }
  const wallMs = now() - t;
  const cpu = spent(cpu0, cpuNow([]));
  await removeBaselineContainers();
  return { what: via === 'cli' ? 'engine-cli' : 'engine-api', round, ready, returned, failures, wallMs, load, foreign, cpu };
}

/** create + start through the engine API with the options `docker run` sends for terminalRunArgs (the CLI's own cost left out). */
async function apiRun(name: string, sessionId: string, port: number, secret: string, callbackUrl: string): Promise<void> {
  const tmpfs = 'rw,nosuid,nodev,size=67108864';
  const container = await docker.createContainer({
    name,
    Image: BENCH.terminalImage,
    User: '1000:1000',
    Env: [
      `BERTH_SESSION_ID=${sessionId}`, `BERTH_CALLBACK_URL=${callbackUrl}`, 'BERTH_CALLBACK_TOKEN=baseline-callback-token',
      `BERTH_SECRET_SHA256=${createHash('sha256').update(secret).digest('hex')}`, 'BERTH_LISTEN_HOST=127.0.0.1', `BERTH_PORT=${port}`,
    ],
    Labels: { 'berth.bench': 'baseline' },
    StopSignal: 'SIGTERM',
    StopTimeout: 3,
    HostConfig: {
      NetworkMode: 'host',
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': tmpfs, '/home/berth': `${tmpfs},uid=1000,gid=1000` },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Memory: 256 * 1024 * 1024,
      MemorySwap: 256 * 1024 * 1024,
      NanoCpus: 1e9,
      PidsLimit: 256,
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
    },
  });
  await container.start();
}

async function berthBurst(berth: RunningBerth, events: DockerEventRecorder, round: number): Promise<Burst> {
  const load = loadAverage();
  const foreign = await foreignContainers();
  const ready: number[] = [];
  const returned: number[] = [];
  const failures: string[] = [];
  const ids: { id: string; t0Wall: number }[] = [];
  const berthPids = berth.processes.map((p) => p.child.pid!).filter(Boolean);
  const cpu0 = cpuNow(berthPids);
  const t = now();
  await Promise.all(
    Array.from({ length: args.n }, async () => {
      const t0Wall = Date.now();
      try {
        const r = await launchUntilStarted(berth.url, 'terminals', {}, 120_000);
        ids.push({ id: r.session.id, t0Wall });
        returned.push(r.tPost - r.t0);
        ready.push(r.tStarted - r.t0);
      } catch (error) {
        failures.push((error as Error).message.slice(0, 200));
      }
    }),
  );
  const wallMs = now() - t;
  const cpu = spent(cpu0, cpuNow(berthPids));
  await sleep(500); // the last log lines and engine events
  const segments: Record<string, number[]> = {};
  const add = (key: string, value: number | undefined) => {
    if (value === undefined || !Number.isFinite(value)) return;
    (segments[key] ??= []).push(value);
  };
  for (const { id, t0Wall } of ids) {
    const logs = berth.events.get(id) ?? {};
    const engine = events.bySession.get(id) ?? {};
    add('POST sent -> "session created" logged (API)', logs['session created'] - t0Wall);
    add('"session created" -> engine `create` event (queue, job, admission, port, create call)', engine.create - logs['session created']);
    add('engine `create` -> engine `start` event', engine.start - engine.create);
    add('engine `start` -> "container started" logged (start call returned)', logs['container started'] - engine.start);
    add('engine `start` -> "session started" logged (agent boot + ready callback)', logs['session started'] - engine.start);
    add('POST sent -> "session started" logged', logs['session started'] - t0Wall);
  }
  log(`berth round ${round}: deleting ${ids.length} sessions`);
  for (let i = 0; i < ids.length; i += 10) await Promise.all(ids.slice(i, i + 10).map(({ id }) => deleteSession(berth.url, id).catch((error: Error) => log(`DELETE ${id}: ${error.message}`))));
  await waitFor(async () => (await benchContainerCount()) === 0, 180_000, 'the burst\'s containers to go', 250).catch((error: Error) => log(error.message));
  return { what: 'berth', round, ready, returned, failures, wallMs, load, foreign, segments, cpu };
}

const LABEL: Record<Burst['what'], string> = {
  'engine-cli': `engine floor: ${'`docker run -d`'} (CLI) -> ready callback`,
  'engine-api': 'engine floor: create + start (engine API) -> ready callback',
  berth: '**Berth: POST -> `started`**',
};

function report(machine: Record<string, string | number>, bursts: Burst[]): string {
  const out: string[] = [];
  out.push(`# Burst of ${args.n} concurrent launches, warm pool empty (${new Date().toISOString()})`);
  out.push('');
  out.push(`Machine: ${machine.nproc} cores, ${machine.cpuModel}, ${machine.memTotalGiB} GiB, kernel ${machine.kernel}, Docker ${machine.dockerInfo}, Node ${machine.node}. Berth ${args.mode === 'combined' ? 'API + worker in one process' : 'API and worker as separate processes'}${args.env ? `, overrides \`${args.env}\`` : ''}.`);
  out.push('');
  const rows: string[][] = [];
  for (const b of bursts) {
    const s = stats(b.ready);
    rows.push([
      `${b.round}`,
      LABEL[b.what],
      `${b.ready.length}/${args.n}`,
      String(b.failures.length),
      fmtMs(s?.p50),
      fmtMs(s?.p99),
      fmtMs(s?.max),
      fmtMs(stats(b.returned)?.p50),
      fmtMs(b.wallMs),
      `${b.cpu.engine.toFixed(1)} / ${b.what === 'berth' ? b.cpu.berth.toFixed(1) : '-'} / ${b.cpu.client.toFixed(1)}`,
      `${b.load.load1}/${b.load.load5}/${b.load.load15}`,
      String(b.foreign),
    ]);
  }
  out.push(markdownTable(['round', 'what', 'ready', 'failed', 'p50 ms', 'p99 ms', 'max ms', '`docker run` / POST returned p50 ms', 'wall ms', 'CPU s until all ready: engine / Berth / client', 'load before', 'other containers'], rows));
  out.push('');
  const pooled = (what: Burst['what']) => stats(bursts.filter((b) => b.what === what).flatMap((b) => b.ready));
  const cli = pooled('engine-cli');
  const api = pooled('engine-api');
  const berth = pooled('berth');
  const ratio = (a: Stats | null, b: Stats | null, key: 'p50' | 'p99') => (a && b ? (a[key] / b[key]).toFixed(2) : '-');
  out.push('All rounds pooled:');
  out.push('');
  out.push(
    markdownTable(STATS_HEADER, [
      ...(cli ? [statsRow(LABEL['engine-cli'], cli)] : []),
      ...(api ? [statsRow(LABEL['engine-api'], api)] : []),
      statsRow(LABEL.berth, berth),
    ]),
  );
  out.push('');
  if (cli) out.push(`Berth / engine floor (CLI): p50 **${ratio(berth, cli, 'p50')}x**, p99 **${ratio(berth, cli, 'p99')}x** (target: at most 1.3x).`);
  if (api) out.push(`Berth / engine floor (API): p50 ${ratio(berth, api, 'p50')}x, p99 ${ratio(berth, api, 'p99')}x.`);
  const failures = bursts.filter((b) => b.what === 'berth').reduce((sum, b) => sum + b.failures.length, 0);
  out.push(`Berth failures: ${failures} of ${bursts.filter((b) => b.what === 'berth').length * args.n}.`);
  out.push('');
  const segs: Record<string, number[]> = {};
  for (const b of bursts.filter((x) => x.segments)) for (const [k, v] of Object.entries(b.segments!)) (segs[k] ??= []).push(...v);
  if (Object.keys(segs).length) {
    out.push("Where Berth's time goes (its logs and `docker events`, all rounds):");
    out.push('');
    out.push(markdownTable(STATS_HEADER.map((h, i) => (i === 0 ? 'segment (ms)' : h)), Object.entries(segs).map(([k, v]) => statsRow(k, stats(v)))));
    out.push('');
  }
  const errors = bursts.flatMap((b) => b.failures.map((f) => `${b.what}: ${f}`));
  if (errors.length) out.push(`Failures: ${errors.slice(0, 5).join(' | ')}`, '');
  return out.join('\n');
}

async function main(): Promise<void> {
  await requireImage(BENCH.terminalImage, 'run scripts/build-images.sh');
  const floors = String(args.floor).split(',').map((f) => f.trim()).filter((f) => f === 'cli' || f === 'api') as ('cli' | 'api')[];
  const machine = machineInfo();
  const stamp = timestampForFile();
  const leftovers = await removeBenchContainers();
  if (leftovers) log(`removed ${leftovers} left-over bench containers`);
  await prepareDatabase();
  await clearQueues();
  const dist = snapshotDist();
  const bursts: Burst[] = [];
  let berth: RunningBerth | undefined;
  const events = new DockerEventRecorder();
  try {
    berth = await startBerth({
      mode: args.mode as 'combined' | 'split',
      distDir: dist.dir,
      logName: `burst-${stamp}`,
      env: { POOL_TERMINALS: '0', START_TIMEOUT_SECONDS: '120', ...parseEnvList(args.env) },
    });
    events.start();
    log(`Berth (${args.mode}) up at ${berth.url}`);
    // One launch first: connections, JIT, the image's pages in the page cache.
    const warm = await launchUntilStarted(berth.url, 'terminals');
    await deleteSession(berth.url, warm.session.id);
    await waitFor(async () => (await benchContainerCount()) === 0, 60_000, 'the warm-up container to go', 100);
    // The order rotates each round (round 1: floors then Berth; round 2 starts one
    // later; ...), so no contender always runs first on the freshest engine, and
    // each burst starts on a quiet machine (the previous burst's removals done).
    const parts: ('berth' | 'cli' | 'api')[] = [...floors, 'berth'];
    for (let round = 1; round <= args.rounds && !aborted(); round++) {
      const shift = (round - 1) % parts.length;
      for (const part of [...parts.slice(shift), ...parts.slice(0, shift)]) {
        const quiet = await waitForQuiet();
        log(`round ${round}: ${part === 'berth' ? 'Berth' : `engine floor (${part})`}, ${args.n} at once (machine ${quiet.quiet ? 'quiet' : 'still busy'} after ${(quiet.waitedMs / 1000).toFixed(0)} s: CPU ${(quiet.lastBusy * 100).toFixed(0)} % busy)`);
        bursts.push(part === 'berth' ? await berthBurst(berth, events, round) : await engineBurst(round, part));
        const last = bursts[bursts.length - 1];
        log(`  p50 ${fmtMs(stats(last.ready)?.p50)} ms, p99 ${fmtMs(stats(last.ready)?.p99)} ms, ${last.failures.length} failed`);
      }
    }
  } finally {
    events.stop();
    await berth?.stop();
    dist.remove();
    await removeBaselineContainers();
    const removed = await removeBenchContainers();
    if (removed) log(`removed ${removed} bench containers left behind`);
  }
  const markdown = report(machine, bursts);
  const file = writeJson(`burst-${stamp}.json`, { args, machine, bursts, markdown });
  const mdFile = writeText(`burst-${stamp}.md`, markdown);
  console.log(markdown);
  console.log(`\nResults: ${path.relative(ROOT, file)} and ${path.relative(ROOT, mdFile)}`);
}

main().then(
  () => process.exit(0),
  async (error: Error) => {
    console.error(`burst failed: ${error.stack ?? error.message}`);
    await removeBenchContainers().catch(() => undefined);
    process.exit(1);
  },
);
