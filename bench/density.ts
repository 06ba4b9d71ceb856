/**
 * How many idle terminal sessions one host holds.
 *
 *   npx ts-node --transpile-only bench/density.ts [--max 200] [--steps 25,50,100,200]
 *       [--create-concurrency 8] [--settle-s 10] [--min-free-gib 2] [--sample 5]
 *       [--mode combined|split] [--host-gib 24] [--headroom-gib 2] [--env KEY=VALUE,...]
 *
 * Starts Berth (large TTL) and, in steps, creates idle sessions until the step's
 * total is running and `started`, lets memory settle, then records:
 *   - host memory used: MemAvailable (/proc/meminfo) drop vs. the baseline taken with
 *     Berth up and no session, and the per-session cost = drop / sessions,
 *   - per-container memory from `docker stats --no-stream` (sum, mean, min, max),
 *   - Berth's RSS (API + worker), and the engine's: dockerd, containerd, and the
 *     containerd shims of our containers,
 * then checks that 5 random sessions still answer a WebSocket `echo ok`.
 * Stops early when MemAvailable falls below --min-free-gib or a session fails.
 * Projects (clearly labelled) how many idle sessions a --host-gib host holds with
 * --headroom-gib left free. Deletes every session at the end and makes sure no
 * `berth.instance=bench` container remains.
 *
 * Output: markdown on stdout, JSON in bench/results/density-<time>.json.
 */
import {
  ADMIN,
  BENCH,
  ROOT,
  benchContainerCount,
  clearQueues,
  createTerminal,
  deleteTerminal,
  containerProcessPss,
  containersCpuSeconds,
  engineCpuSeconds,
  processCpuSeconds,
  dockerStatsMemory,
  engineMemory,
  EngineMemory,
  fmtMiB,
  foreignContainers,
  getTerminal,
  GiB,
  loadAverage,
  log,
  machineInfo,
  markdownTable,
  MiB,
  now,
  onInterrupt,
  parseArgs,
  parseEnvList,
  prepareDatabase,
  readMeminfo,
  removeBenchContainers,
  requireImage,
  request,
  RunningBerth,
  sleep,
  snapshotDist,
  startBerth,
  stats,
  timestampForFile,
  waitFor,
  websocketEcho,
  writeJson,
  writeText,
} from './lib';
import path from 'node:path';

const args = parseArgs(process.argv.slice(2), {
  max: 200,
  steps: '',
  'create-concurrency': 8,
  'settle-s': 10,
  'min-free-gib': 2,
  sample: 5,
  mode: 'combined',
  'host-gib': 24,
  'headroom-gib': 2,
  'probe-rate': 100,
  'probe-seconds': 5,
  env: '',
});

const aborted = onInterrupt('interrupted: stopping after the current step and deleting every session (Ctrl-C again to exit at once)');

interface Live {
  id: string;
  token: string;
  tunnelUrl: string;
  containerName: string;
  containerId: string;
  /** A WebSocket check attached to it: its shell is running, it is no longer idle. */
  touched: boolean;
}

interface StepResult {
  target: number;
  sessions: number;
  createSeconds: number;
  sessionsPerSecond: number;
  memAvailableGiB: number;
  hostUsedDeltaMiB: number;
  perSessionMiB: number;
  /** (host delta now - host delta at the previous step) / sessions added: cancels constant offsets. */
  marginalPerSessionMiB: number | null;
  dockerStats: { sumMiB: number; meanMiB: number; minMiB: number; maxMiB: number; count: number; meanTouchedMiB: number | null; meanIdleMiB: number | null };
  berthRssMiB: number;
  berthRssDeltaMiB: number;
  /** PSS of the processes inside our containers (server.py and shells), per container, and its anonymous + tmpfs part. */
  containerPss: { meanMiB: number; anonMeanMiB: number; fileMeanMiB: number; shmemMeanMiB: number; count: number };
  engine: {
    dockerdMiB: number;
    containerdMiB: number;
    shimsOursRssMiB: number;
    shimCountOurs: number;
    shimPssMeanMiB: number;
    shimAnonMeanMiB: number;
    engineDeltaMiB: number;
  };
  accountedPerSessionMiB: number;
  touchedSessions: number;
  /** CPU used during the settle window, in % of one core: all sessions together, Berth, the engine (dockerd, containerd, shims). */
  idleCpu: { windowSeconds: number; sessionsPct: number; berthPct: number; enginePct: number };
  check: { ok: number; failed: number; echoMs: number[]; errors: string[] };
  load: ReturnType<typeof loadAverage>;
  foreignContainers: number;
  /** GET /api/v1/terminals/{random live id}, open loop at --probe-rate for --probe-seconds, with every session idle. */
  api: ApiProbe;
  failure?: string;
}

interface ApiProbe {
  requests: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const mib = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;

function defaultSteps(max: number): number[] {
  if (args.steps) return String(args.steps).split(',').map(Number).filter((n) => n > 0 && n <= max).sort((a, b) => a - b);
  const steps: number[] = [];
  for (let n = 25; n < max; n *= 2) steps.push(n);
  steps.push(max);
  return steps;
}

/** MemAvailable as the median of three reads one second apart. */
async function settledAvailable(): Promise<number> {
  const reads: number[] = [];
  for (let i = 0; i < 3; i++) {
    reads.push(readMeminfo().available);
    if (i < 2) await sleep(1000);
  }
  return reads.sort((a, b) => a - b)[1];
}

/** Creates `count` sessions, at most `concurrency` starting at once; resolves when all are started. */
async function createSessions(berth: RunningBerth, count: number, concurrency: number): Promise<{ created: Live[]; failure?: string }> {
  const created: Live[] = [];
  let failure: string | undefined;
  let next = 0;
  const worker = async () => {
    while (next < count && !failure && !aborted()) {
      next++;
      let id: string | undefined;
      try {
        const { session } = await createTerminal(berth.url);
        id = session.id;
        const deadline = Date.now() + 120_000;
        for (;;) {
          if (Date.now() > deadline) throw new Error(`session ${session.id} not started within 120 s`);
          const { session: view } = await getTerminal(berth.url, session.id);
          if (view.status === 'started') {
            created.push({
              id: session.id,
              token: session.access_token,
              // The path form: Node's resolver does not resolve the host form's `{id}.localhost`.
              tunnelUrl: view.path_url ?? view.tunnel_url!,
              containerName: view.container_name!,
              containerId: view.container_id!,
              touched: false,
            });
            break;
          }
          if (!['pending', 'starting'].includes(view.status)) throw new Error(`session ${session.id} became ${view.status}: ${view.error_message}`);
          await sleep(100);
        }
      } catch (error) {
        failure ??= (error as Error).message;
        if (id) await deleteTerminal(berth.url, id).catch(() => undefined);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return { created, failure };
}

function pickRandom<T>(items: T[], k: number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy.slice(0, k);
}

async function deleteAll(berth: RunningBerth | undefined, live: Live[]): Promise<{ deleteSeconds: number; forced: number; remaining: number }> {
  const t = now();
  if (berth) {
    let next = 0;
    const worker = async () => {
      while (next < live.length) {
        const session = live[next++];
        await deleteTerminal(berth.url, session.id).catch((error: Error) => log(`DELETE ${session.id}: ${error.message}`));
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    // The containers go in the background (teardown jobs): wait for them, bounded.
    await waitFor(async () => (await benchContainerCount()) === 0, 180_000, 'bench containers to be removed', 500).catch((error: Error) => log(error.message));
  }
  const deleteSeconds = (now() - t) / 1000;
  const forced = await removeBenchContainers();
  if (forced) log(`force-removed ${forced} berth.instance=${BENCH.instance} containers that were still there`);
  const remaining = await benchContainerCount();
  return { deleteSeconds, forced, remaining };
}

/**
 * Is the API still answering while the host holds this many sessions? Open loop: a
 * request leaves every 1/rate s whether or not earlier ones answered, and its latency
 * counts from when it was due, so a stall cannot hide by slowing the sender.
 */
async function probeApi(berth: RunningBerth, ids: string[]): Promise<ApiProbe> {
  const rate = Number(args['probe-rate']);
  const total = Math.max(1, Math.round(rate * Number(args['probe-seconds'])));
  const latencies: number[] = [];
  let errors = 0;
  const start = now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    const id = ids.length ? ids[Math.floor(Math.random() * ids.length)] : '00000000-0000-4000-8000-000000000000';
    // With no session yet (the baseline) an unknown id: the same key check and lookup, answered 404.
    inflight.push(
      request('GET', `${berth.url}/api/v1/terminals/${id}`, { headers: ADMIN }).then(
        (res) => {
          if (res.status !== (ids.length ? 200 : 404)) errors++;
          latencies.push(res.tEnd - due);
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(inflight);
  const s = stats(latencies);
  return { requests: total, errors, p50Ms: Math.round((s?.p50 ?? 0) * 10) / 10, p99Ms: Math.round((s?.p99 ?? 0) * 10) / 10, maxMs: Math.round(s?.max ?? 0) };
}

/** Host memory used (MemAvailable drop) against idle sessions, as a self-contained SVG line chart. */
function memoryCurveSvg(steps: StepResult[], title: string): string {
  const W = 640, H = 360, L = 70, R = 20, T = 40, B = 50;
  const maxX = Math.max(1, ...steps.map((s) => s.sessions));
  const maxY = Math.max(1, ...steps.map((s) => s.hostUsedDeltaMiB));
  const niceStep = (max: number, ticks: number) => {
    const raw = max / ticks;
    const mag = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 5, 10].map((m) => m * mag).find((m) => m >= raw)!;
  };
  const xs = niceStep(maxX, 5), ys = niceStep(maxY, 5);
  const xMax = Math.ceil(maxX / xs) * xs, yMax = Math.ceil(maxY / ys) * ys;
  const px = (x: number) => L + ((W - L - R) * x) / xMax;
  const py = (y: number) => H - B - ((H - T - B) * y) / yMax;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${title}</text>`);
  for (let x = 0; x <= xMax; x += xs) {
    out.push(`<line x1="${px(x)}" y1="${T}" x2="${px(x)}" y2="${H - B}" stroke="#eee"/><text x="${px(x)}" y="${H - B + 16}" text-anchor="middle">${x}</text>`);
  }
  for (let y = 0; y <= yMax; y += ys) {
    out.push(`<line x1="${L}" y1="${py(y)}" x2="${W - R}" y2="${py(y)}" stroke="#eee"/><text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${y}</text>`);
  }
  out.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">idle terminal sessions (started)</text>`);
  out.push(`<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">host memory used, MiB (MemAvailable drop)</text>`);
  const points = [{ sessions: 0, hostUsedDeltaMiB: 0 }, ...steps].map((s) => `${px(s.sessions).toFixed(1)},${py(s.hostUsedDeltaMiB).toFixed(1)}`);
  out.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="${points.join(' ')}"/>`);
  for (const s of steps) {
    out.push(`<circle cx="${px(s.sessions).toFixed(1)}" cy="${py(s.hostUsedDeltaMiB).toFixed(1)}" r="3.5" fill="#1f77b4"/>`);
    out.push(`<text x="${(px(s.sessions) - 4).toFixed(1)}" y="${(py(s.hostUsedDeltaMiB) - 8).toFixed(1)}" text-anchor="end" font-size="11">${s.perSessionMiB.toFixed(1)} MiB each</text>`);
  }
  out.push('</svg>');
  return out.join('\n');
}

function report(r: {
  machine: Record<string, string | number>;
  steps: StepResult[];
  baseline: { beforeBerthAvailableGiB: number; availableGiB: number; memTotalGiB: number; berthRssMiB: number; engine: EngineMemory; berthCostMiB: number; api: ApiProbe };
  projection: { sessions: number; perSessionMiB: number; fromStep: number; basis: string } | null;
  cleanup: { deleteSeconds: number; forced: number; remaining: number };
  stopReason: string;
  mode: string;
}): string {
  const out: string[] = [];
  out.push(`# Berth idle-session density (${new Date().toISOString()})`);
  out.push('');
  out.push(`Machine: ${r.machine.nproc} cores, ${r.machine.cpuModel}, ${r.machine.memTotalGiB} GiB, kernel ${r.machine.kernel}, Docker ${r.machine.dockerInfo}. Berth: ${r.mode === 'combined' ? 'API + worker in one process' : 'separate API and worker processes'}, session memory limit ${parseEnvList(args.env).SESSION_MEMORY_MB ?? 256} MB (limit, not use)${args.env ? `, overrides \`${args.env}\`` : ''}.`);
  out.push('');
  out.push(
    `Baseline (Berth up, no session): MemAvailable ${r.baseline.availableGiB.toFixed(2)} GiB of ${r.baseline.memTotalGiB.toFixed(2)} GiB ` +
      `(${r.baseline.beforeBerthAvailableGiB.toFixed(2)} GiB before Berth started: Berth costs ~${r.baseline.berthCostMiB.toFixed(0)} MiB), ` +
      `API GET p50 ${r.baseline.api.p50Ms} / p99 ${r.baseline.api.p99Ms} ms at ${args['probe-rate']} req/s, ` +
      `Berth RSS ${r.baseline.berthRssMiB.toFixed(0)} MiB, dockerd ${fmtMiB(r.baseline.engine.dockerd)} MiB, containerd ${fmtMiB(r.baseline.engine.containerd)} MiB.`,
  );
  out.push('');
  out.push(
    markdownTable(
      ['sessions', 'create s (per s)', 'host used delta MiB', '**per session MiB**', 'marginal MiB', 'docker stats sum / mean MiB', 'container PSS (anon+tmpfs) mean MiB', 'shim PSS (anon) mean MiB', 'engine RSS MiB: dockerd + containerd + our shims = total', 'Berth RSS MiB', 'idle CPU % of a core: sessions / Berth / engine', 'echo check', 'API GET p50 / p99 ms (errors)', 'load 1/5/15', 'other containers'],
      r.steps.map((s) => [
        String(s.sessions),
        `${s.createSeconds.toFixed(1)} (${s.sessionsPerSecond.toFixed(1)})`,
        s.hostUsedDeltaMiB.toFixed(0),
        `**${s.perSessionMiB.toFixed(1)}**`,
        s.marginalPerSessionMiB === null ? '-' : s.marginalPerSessionMiB.toFixed(1),
        `${s.dockerStats.sumMiB.toFixed(0)} / ${s.dockerStats.meanMiB.toFixed(1)}`,
        `${s.containerPss.meanMiB.toFixed(1)} (${(s.containerPss.anonMeanMiB + s.containerPss.shmemMeanMiB).toFixed(1)})`,
        `${s.engine.shimPssMeanMiB.toFixed(1)} (${s.engine.shimAnonMeanMiB.toFixed(1)})`,
        `${s.engine.dockerdMiB.toFixed(0)} + ${s.engine.containerdMiB.toFixed(0)} + ${s.engine.shimsOursRssMiB.toFixed(0)} = ${(s.engine.dockerdMiB + s.engine.containerdMiB + s.engine.shimsOursRssMiB).toFixed(0)}`,
        `${s.berthRssMiB.toFixed(0)} (${s.berthRssDeltaMiB >= 0 ? '+' : ''}${s.berthRssDeltaMiB.toFixed(0)})`,
        `${s.idleCpu.sessionsPct} / ${s.idleCpu.berthPct} / ${s.idleCpu.enginePct}`,
        `${s.check.ok}/${s.check.ok + s.check.failed} ok${s.check.echoMs.length ? `, ${Math.round(stats(s.check.echoMs)!.p50)} ms` : ''}`,
        `${s.api.p50Ms} / ${s.api.p99Ms} (${s.api.errors})`,
        `${s.load.load1}/${s.load.load5}/${s.load.load15}`,
        String(s.foreignContainers),
      ]),
    ),
  );
  out.push('');
  const last = r.steps[r.steps.length - 1];
  if (last) {
    out.push(
      `At ${last.sessions} sessions: docker stats per container min ${last.dockerStats.minMiB.toFixed(1)} / mean ${last.dockerStats.meanMiB.toFixed(1)} / max ${last.dockerStats.maxMiB.toFixed(1)} MiB` +
        (last.dockerStats.meanTouchedMiB !== null ? `; idle ones mean ${last.dockerStats.meanIdleMiB?.toFixed(1)} MiB, the ${last.touchedSessions} with a shell attached by the echo checks mean ${last.dockerStats.meanTouchedMiB.toFixed(1)} MiB` : '') +
        `. Processes inside a container: PSS ${last.containerPss.meanMiB.toFixed(1)} MiB = anon ${last.containerPss.anonMeanMiB.toFixed(1)} + tmpfs ${last.containerPss.shmemMeanMiB.toFixed(1)} + shared file pages ${last.containerPss.fileMeanMiB.toFixed(1)} MiB. ` +
        `Its containerd shim: RSS ${(last.engine.shimsOursRssMiB / Math.max(1, last.engine.shimCountOurs)).toFixed(1)} MiB, PSS ${last.engine.shimPssMeanMiB.toFixed(1)} MiB, anon ${last.engine.shimAnonMeanMiB.toFixed(1)} MiB. ` +
        `Private user-space memory per session (container anon + tmpfs, shim anon, dockerd/containerd and Berth growth): ${last.accountedPerSessionMiB.toFixed(1)} MiB; ` +
        (last.perSessionMiB >= last.accountedPerSessionMiB
          ? `the rest of the MemAvailable drop per session (${(last.perSessionMiB - last.accountedPerSessionMiB).toFixed(1)} MiB) is kernel-side (page tables, cgroup and mount structures, socket buffers, slab). `
          : `that is MORE than the MemAvailable drop per session: MemAvailable is host-wide, so something else on the host released memory during the run (or page cache was reclaimed); read the per-session figure with that margin. `) +
        `Shared file pages (the agent binary, libraries, the shim binary) are page cache that MemAvailable counts as available; they are paid once, not per session. ` +
        `docker stats is each cgroup's charge, including page cache the container touched first, so it does not add up to the host figure.`,
    );
    out.push('');
  }
  if (r.projection) {
    out.push(
      `**Projection (not measured):** a ${args['host-gib']} GiB host keeping ${args['headroom-gib']} GiB free holds about **${r.projection.sessions.toLocaleString('en-US')} idle terminal sessions**, ` +
        `based on ${r.projection.perSessionMiB.toFixed(1)} MiB per session (MemAvailable drop / sessions at ${r.projection.fromStep} sessions). ${r.projection.basis}`,
    );
    out.push('');
  }
  out.push(`Stopped because: ${r.stopReason}. Clean-up: every session DELETEd, containers gone after ${r.cleanup.deleteSeconds.toFixed(1)} s, ${r.cleanup.forced} force-removed, ${r.cleanup.remaining} remaining.`);
  return out.join('\n');
}

async function main(): Promise<void> {
  const steps = defaultSteps(args.max);
  if (steps.length === 0) throw new Error('no steps (check --max / --steps)');
  if (args.mode !== 'combined' && args.mode !== 'split') throw new Error('--mode must be combined or split');
  await requireImage(BENCH.terminalImage, 'run scripts/build-images.sh');
  const machine = machineInfo();
  const stamp = timestampForFile();
  const leftovers = await removeBenchContainers();
  if (leftovers) log(`removed ${leftovers} left-over bench containers`);
  await prepareDatabase();
  await clearQueues();

  const memTotal = readMeminfo().total;
  const beforeBerth = await settledAvailable();
  const dist = snapshotDist();
  let berth: RunningBerth | undefined;
  const live: Live[] = [];
  const results: StepResult[] = [];
  let stopReason = `reached --max ${args.max}`;
  let cleanup = { deleteSeconds: 0, forced: 0, remaining: 0 };
  let baseline!: { beforeBerthAvailableGiB: number; availableGiB: number; memTotalGiB: number; berthRssMiB: number; engine: EngineMemory; berthCostMiB: number; api: ApiProbe };
  let baseAvailable = 0;

  try {
    berth = await startBerth({
      mode: args.mode as 'combined' | 'split',
      distDir: dist.dir,
      logName: `density-${stamp}`,
      // Sessions must outlive the run; starts may queue behind each other on 2 cores.
      env: { TERMINAL_TTL_HOURS: '48', START_TIMEOUT_SECONDS: '180', ...parseEnvList(args.env) },
    });
    log(`Berth (${args.mode}) up at ${berth.url}; settling ${args['settle-s']} s for the baseline`);
    await sleep(args['settle-s'] * 1000);
    baseAvailable = await settledAvailable();
    const berthRss0 = berth.rss();
    const engine0 = engineMemory(new Set());
    baseline = {
      beforeBerthAvailableGiB: beforeBerth / GiB,
      availableGiB: baseAvailable / GiB,
      memTotalGiB: memTotal / GiB,
      berthRssMiB: berthRss0 / MiB,
      engine: engine0,
      berthCostMiB: (beforeBerth - baseAvailable) / MiB,
      // Warm-up round first: the first requests pay for JIT and connection set-up.
      api: await probeApi(berth, []).then(() => probeApi(berth!, [])),
    };

    for (const target of steps) {
      if (aborted()) {
        stopReason = 'interrupted';
        break;
      }
      const available = readMeminfo().available;
      if (available < args['min-free-gib'] * GiB) {
        stopReason = `MemAvailable ${(available / GiB).toFixed(2)} GiB < ${args['min-free-gib']} GiB before the ${target} step`;
        break;
      }
      log(`step ${target}: creating ${target - live.length} sessions (${args['create-concurrency']} at a time)`);
      const t = now();
      const { created, failure } = await createSessions(berth, target - live.length, args['create-concurrency']);
      live.push(...created);
      const createSeconds = (now() - t) / 1000;
      log(`step ${target}: ${live.length} sessions started in ${createSeconds.toFixed(1)} s${failure ? `; failure: ${failure}` : ''}; settling ${args['settle-s']} s`);
      // Idle CPU over the settle window (after a short pause so start-up work is over).
      await sleep(Math.min(2000, args['settle-s'] * 200));
      const berthPids = berth.processes.map((p) => p.child.pid!).filter(Boolean);
      const cpu0 = { at: now(), sessions: containersCpuSeconds(live.map((s) => s.containerId)), berth: berthPids.reduce((a, pid) => a + processCpuSeconds(pid), 0), engine: engineCpuSeconds() };
      await sleep(args['settle-s'] * 1000);
      const windowSeconds = (now() - cpu0.at) / 1000;
      const pct = (seconds: number) => Math.round((seconds / windowSeconds) * 1000) / 10;
      const idleCpu = {
        windowSeconds: Math.round(windowSeconds * 10) / 10,
        sessionsPct: pct(containersCpuSeconds(live.map((s) => s.containerId)) - cpu0.sessions),
        berthPct: pct(berthPids.reduce((a, pid) => a + processCpuSeconds(pid), 0) - cpu0.berth),
        enginePct: pct(engineCpuSeconds() - cpu0.engine),
      };

      const memAvailable = await settledAvailable();
      const ids = new Set(live.map((s) => s.containerId));
      const engine = engineMemory(ids);
      const pss = containerProcessPss(live.map((s) => s.containerId));
      const perContainer = (bytes: number) => (pss.found ? Math.round((bytes / pss.found / MiB) * 10) / 10 : 0);
      const statsMap = await dockerStatsMemory(live.map((s) => s.containerName));
      const values = live.map((s) => statsMap.get(s.containerName)).filter((v): v is number => v !== undefined && Number.isFinite(v));
      const touchedValues = live.filter((s) => s.touched).map((s) => statsMap.get(s.containerName)).filter((v): v is number => v !== undefined);
      const idleValues = live.filter((s) => !s.touched).map((s) => statsMap.get(s.containerName)).filter((v): v is number => v !== undefined);
      const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
      const berthRss = berth.rss();
      const engineDelta = engine.dockerd + engine.containerd - (engine0.dockerd + engine0.containerd);
      const hostDelta = baseAvailable - memAvailable;
      const sumStats = values.reduce((a, b) => a + b, 0);
      const load = loadAverage();
      const foreign = await foreignContainers();
      const touchedBefore = live.filter((s) => s.touched).length;
      const api = await probeApi(berth, live.map((s) => s.id));

      // Only now touch a few sessions (their shells start): memory above was idle-only (except earlier steps' samples).
      const check = { ok: 0, failed: 0, echoMs: [] as number[], errors: [] as string[] };
      for (const s of pickRandom(live, args.sample)) {
        const t0 = now();
        try {
          const ws = await websocketEcho(s.tunnelUrl, s.token, 20_000);
          check.ok++;
          check.echoMs.push(ws.tEcho - t0);
        } catch (error) {
          check.failed++;
          check.errors.push(`${s.id}: ${(error as Error).message}`);
        }
        s.touched = true;
      }

      const step: StepResult = {
        target,
        sessions: live.length,
        createSeconds,
        sessionsPerSecond: created.length / createSeconds,
        memAvailableGiB: memAvailable / GiB,
        hostUsedDeltaMiB: hostDelta / MiB,
        perSessionMiB: live.length ? hostDelta / MiB / live.length : 0,
        marginalPerSessionMiB: (() => {
          const prev = results[results.length - 1];
          const added = live.length - (prev?.sessions ?? 0);
          return prev && added > 0 ? (hostDelta / MiB - prev.hostUsedDeltaMiB) / added : null;
        })(),
        dockerStats: {
          sumMiB: sumStats / MiB,
          meanMiB: mean(values) / MiB,
          minMiB: values.length ? Math.min(...values) / MiB : 0,
          maxMiB: values.length ? Math.max(...values) / MiB : 0,
          count: values.length,
          meanTouchedMiB: touchedValues.length ? mean(touchedValues) / MiB : null,
          meanIdleMiB: idleValues.length ? mean(idleValues) / MiB : null,
        },
        berthRssMiB: berthRss / MiB,
        berthRssDeltaMiB: (berthRss - berthRss0) / MiB,
        containerPss: {
          meanMiB: perContainer(pss.total.pss),
          anonMeanMiB: perContainer(pss.total.anon),
          fileMeanMiB: perContainer(pss.total.file),
          shmemMeanMiB: perContainer(pss.total.shmem),
          count: pss.found,
        },
        engine: {
          dockerdMiB: mib(engine.dockerd),
          containerdMiB: mib(engine.containerd),
          shimsOursRssMiB: mib(engine.shimsOurs),
          shimCountOurs: engine.shimCountOurs,
          shimPssMeanMiB: engine.shimCountOurs ? mib(engine.shimsOursPss.pss / engine.shimCountOurs) : 0,
          shimAnonMeanMiB: engine.shimCountOurs ? mib(engine.shimsOursPss.anon / engine.shimCountOurs) : 0,
          engineDeltaMiB: mib(engineDelta),
        },
        // Anonymous + tmpfs memory only: file pages (the agent binary, libc, the shim binary) are shared page cache, which MemAvailable counts as available.
        accountedPerSessionMiB: live.length
          ? (pss.total.anon + pss.total.shmem + engine.shimsOursPss.anon + engineDelta + (berthRss - berthRss0)) / MiB / live.length
          : 0,
        touchedSessions: touchedBefore,
        idleCpu,
        check,
        load,
        foreignContainers: foreign,
        api,
        failure,
      };
      results.push(step);
      log(
        `step ${target}: ${live.length} sessions, host delta ${step.hostUsedDeltaMiB.toFixed(0)} MiB = ${step.perSessionMiB.toFixed(1)} MiB/session; ` +
          `docker stats mean ${step.dockerStats.meanMiB.toFixed(1)} MiB; container PSS mean ${step.containerPss.meanMiB.toFixed(1)} MiB (anon ${step.containerPss.anonMeanMiB}); shim PSS ${step.engine.shimPssMeanMiB} MiB each; Berth RSS ${step.berthRssMiB.toFixed(0)} MiB; ` +
          `echo ${check.ok}/${check.ok + check.failed}; load ${load.load1}`,
      );
      if (failure) {
        stopReason = `a session failed: ${failure}`;
        break;
      }
      if (check.failed) {
        stopReason = `${check.failed} sessions failed the echo check: ${check.errors[0]}`;
        break;
      }
      if (memAvailable < args['min-free-gib'] * GiB) {
        stopReason = `MemAvailable ${(memAvailable / GiB).toFixed(2)} GiB < ${args['min-free-gib']} GiB`;
        break;
      }
    }
  } finally {
    log(`deleting ${live.length} sessions`);
    cleanup = await deleteAll(berth, live);
    await berth?.stop();
    dist.remove();
  }

  const largest = results.filter((s) => s.sessions > 0).sort((a, b) => b.sessions - a.sessions)[0];
  let projection = null;
  if (largest && baseline) {
    const baseUsed = memTotal - baseAvailable; // OS, Postgres, Redis, dockerd, Berth, ... with no session
    const usable = args['host-gib'] * GiB - args['headroom-gib'] * GiB - baseUsed;
    const perSession = largest.perSessionMiB * MiB;
    projection = {
      sessions: Math.floor(usable / perSession),
      perSessionMiB: largest.perSessionMiB,
      fromStep: largest.sessions,
      basis:
        `Formula: (${args['host-gib']} GiB - ${args['headroom-gib']} GiB headroom - ${(baseUsed / GiB).toFixed(2)} GiB used with Berth up and no session) / per-session cost. ` +
        `Assumes the per-session cost stays linear and memory is the limit (2 cores here; idle sessions use no CPU).` +
        (largest.sessions < 50 ? ` With only ${largest.sessions} sessions the per-session figure is dominated by noise in MemAvailable: use --max 100 or more.` : ''),
    };
  }
  const markdown = report({ machine, steps: results, baseline, projection, cleanup, stopReason, mode: args.mode });
  const file = writeJson(`density-${stamp}.json`, { args, machine, baseline, steps: results, projection, cleanup, stopReason, markdown });
  const mdFile = writeText(`density-${stamp}.md`, markdown);
  const svgFile = writeText(`density-${stamp}.svg`, memoryCurveSvg(results, `Idle terminals: host memory used vs sessions (${machine.nproc} cores, ${machine.memTotalGiB} GiB)`));
  log(`memory curve: ${path.relative(ROOT, svgFile)}`);
  console.log(markdown);
  console.log(`\nResults: ${path.relative(ROOT, file)} and ${path.relative(ROOT, mdFile)}`);
  if (cleanup.remaining) throw new Error(`${cleanup.remaining} bench containers remain after clean-up`);
}

main().then(
  () => process.exit(0),
  async (error: Error) => {
    console.error(`density failed: ${error.stack ?? error.message}`);
    await removeBenchContainers().catch(() => undefined);
    process.exit(1);
  },
);
