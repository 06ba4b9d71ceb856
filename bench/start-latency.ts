/**
 * Cold-start latency of a Berth terminal, as a client sees it.
 *
 *   npx ts-node --transpile-only bench/start-latency.ts [--n 60] [--mode both|combined|split]
 *       [--parallel K] [--warmup 2] [--baseline-runs 20] [--skip-baseline]
 *       [--env KEY=VALUE,...]   (extra Berth environment, e.g. SESSION_CPUS=1)
 *
 * For each of N sessions, created ONE AT A TIME (each a fresh container), measures from
 * the moment the POST is sent:
 *   - POST -> 202,
 *   - POST -> `started` as the client learns it: the POST's answer (warm pool, 201) or a
 *     GET /api/v1/sessions/{id}?wait_seconds=60 that answers as soon as it is `started`,
 *   - POST -> first byte of the terminal page (its origin `?token=` 303, then `/` 200),
 *   - POST -> WebSocket open and -> `echo ok` round trip,
 * plus Berth's own timeline for the same session (its JSON logs and `docker events`),
 * then DELETEs it and waits until the container is gone before the next one.
 *
 * Berth runs from a private copy of dist/ either as one process (API + worker,
 * RUN_WORKER_IN_API=true: `combined`) or as separate API and worker processes (`split`).
 * `--parallel K` additionally creates K sessions at once per round (N in total).
 *
 * Output: markdown on stdout, JSON in bench/results/start-latency-<time>.json.
 * Requires: services up, berth/terminal:latest built, `npx nest build` (scripts/bench.sh does all).
 */
import { BaselineResults, ParallelBaselineResults, runBaselines, runParallelBaseline } from './baselines';
import {
  BENCH,
  ROOT,
  benchContainerCount,
  clearQueues,
  createSession,
  deleteSession,
  DockerEventRecorder,
  fetchTerminalPage,
  fmtMs,
  foreignContainers,
  getSession,
  SessionView,
  loadAverage,
  log,
  machineInfo,
  markdownTable,
  now,
  onInterrupt,
  parseArgs,
  parseEnvList,
  prepareDatabase,
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
  waitContainerGone,
  websocketEcho,
  writeJson,
  writeText,
} from './lib';
import path from 'node:path';

const args = parseArgs(process.argv.slice(2), {
  n: 60,
  mode: 'both',
  parallel: 0,
  warmup: 2,
  'baseline-runs': 20,
  'skip-baseline': false,
  env: '',
});

const aborted = onInterrupt('interrupted: finishing the current session, then cleaning up (Ctrl-C again to exit at once)');

/** Client-side times are ms since the POST was sent (performance.now); server-side ones from wall clocks (ms resolution). */
interface Sample {
  index: number;
  id?: string;
  error?: string;
  postMs?: number;
  startingSeenMs?: number;
  startedSeenMs?: number;
  page303Ms?: number;
  pageMs?: number;
  wsOpenMs?: number;
  echoMs?: number;
  polls?: number;
  meanGetRttMs?: number;
  /** Berth-side, from the session row: started_at - created_at (no polling granularity). */
  dbCreatedToStartedMs?: number;
  /** From Berth's logs and docker events, relative to the POST (wall clock). */
  logCreatedMs?: number;
  engineCreateMs?: number;
  engineStartMs?: number;
  logContainerStartedMs?: number;
  logSessionStartedMs?: number;
  deleteToGoneMs?: number;
  t0Wall: number;
}

async function measureSession(berth: RunningBerth, index: number): Promise<Sample> {
  const t0Wall = Date.now();
  const t0 = now();
  const sample: Sample = { index, t0Wall };
  try {
    const { session, res } = await createSession(berth.url, 'terminals');
    sample.id = session.id;
    sample.postMs = res.tEnd - t0;

    // Long-poll: GET with wait_seconds answers as soon as the session is `started` (or
    // ended), so the client sees `started` when the API knows it, without a polling interval.
    let view: SessionView = session;
    let polls = 0;
    let rttSum = 0;
    while (view.status !== 'started') {
      if (!['pending', 'starting'].includes(view.status)) throw new Error(`session became ${view.status}: ${view.error_message}`);
      if (now() - t0 > 90_000) throw new Error(`not started within 90 s (last status ${view.status})`);
      const sent = now();
      const got = await getSession(berth.url, session.id, 60);
      view = got.session;
      polls++;
      rttSum += got.res.tEnd - sent;
      if (view.status !== 'pending' && sample.startingSeenMs === undefined) sample.startingSeenMs = got.res.tEnd - t0;
      if (view.status === 'started') sample.startedSeenMs = got.res.tEnd - t0;
    }
    sample.startedSeenMs ??= sample.postMs; // started in the POST's own answer (warm pool)
    sample.polls = polls;
    sample.meanGetRttMs = polls ? rttSum / polls : 0;
    if (view.started_at) sample.dbCreatedToStartedMs = Date.parse(view.started_at) - Date.parse(view.created_at);

    const page = await fetchTerminalPage(view.tunnel_url!, session.access_token);
    sample.page303Ms = page.t303 - t0;
    sample.pageMs = page.tPage - t0;
    const ws = await websocketEcho(view.path_url!, session.access_token);
    sample.wsOpenMs = ws.tOpen - t0;
    sample.echoMs = ws.tEcho - t0;
  } catch (error) {
    sample.error = (error as Error).message;
    log(`session #${index} failed: ${sample.error}`);
  }
  return sample;
}

async function endSession(berth: RunningBerth, sample: Sample): Promise<void> {
  if (!sample.id) return;
  const t = now();
  try {
    await deleteSession(berth.url, sample.id);
    const gone = await waitContainerGone(sample.id);
    sample.deleteToGoneMs = Number.isFinite(gone) ? now() - t : undefined;
    if (!Number.isFinite(gone)) log(`container of ${sample.id} still there 30 s after DELETE`);
  } catch (error) {
    log(`DELETE ${sample.id} failed: ${(error as Error).message}`);
  }
}

/** Fills in the Berth-side timeline once all log lines and engine events have arrived. */
function attachServerTimeline(samples: Sample[], berth: RunningBerth, events: DockerEventRecorder): void {
  for (const s of samples) {
    if (!s.id) continue;
    const logs = berth.events.get(s.id) ?? {};
    const engine = events.bySession.get(s.id) ?? {};
    const rel = (t: number | undefined) => (t === undefined ? undefined : t - s.t0Wall);
    s.logCreatedMs = rel(logs['session created']);
    s.logContainerStartedMs = rel(logs['container started']);
    s.logSessionStartedMs = rel(logs['session started']);
    s.engineCreateMs = rel(engine.create);
    s.engineStartMs = rel(engine.start);
  }
}

type MetricKey = keyof Sample;
const CLIENT_METRICS: [string, (s: Sample) => number | undefined][] = [
  ['POST -> 202 response', (s) => s.postMs],
  ['**POST -> `started` seen (GET ?wait_seconds)**', (s) => s.startedSeenMs],
  ['POST -> page 303 (`?token=`)', (s) => s.page303Ms],
  ['**POST -> terminal page first byte (200)**', (s) => s.pageMs],
  ['POST -> WebSocket open', (s) => s.wsOpenMs],
  ['**POST -> WebSocket `echo ok` round trip**', (s) => s.echoMs],
];
const diff = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a - b);
const SERVER_METRICS: [string, (s: Sample) => number | undefined][] = [
  ['POST sent -> "session created" logged (API: insert + enqueue)', (s) => s.logCreatedMs],
  ['"session created" -> engine `create` event (job pickup, claim, expiry job, create call)', (s) => diff(s.engineCreateMs, s.logCreatedMs)],
  ['engine `create` -> engine `start` event', (s) => diff(s.engineStartMs, s.engineCreateMs)],
  ['engine `start` -> "container started" logged (start call returns)', (s) => diff(s.logContainerStartedMs, s.engineStartMs)],
  ['engine `start` -> "session started" logged (container boot + ready callback)', (s) => diff(s.logSessionStartedMs, s.engineStartMs)],
  ['"session started" logged -> client sees `started`', (s) => diff(s.startedSeenMs, s.logSessionStartedMs)],
  ['row created_at -> started_at (DB clock)', (s) => s.dbCreatedToStartedMs],
  ['`started` seen -> page first byte', (s) => diff(s.pageMs, s.startedSeenMs)],
  ['page first byte -> `echo ok`', (s) => diff(s.echoMs, s.pageMs)],
  ['DELETE -> container gone (not part of the start)', (s) => s.deleteToGoneMs],
];

function summarize(samples: Sample[], metrics: [string, (s: Sample) => number | undefined][]): { label: string; stats: Stats | null }[] {
  const ok = samples.filter((s) => !s.error);
  return metrics.map(([label, pick]) => ({ label, stats: stats(ok.map(pick).filter((x): x is number => x !== undefined)) }));
}

interface RunResult {
  mode: 'combined' | 'split';
  kind: 'sequential' | 'parallel';
  parallel: number;
  samples: Sample[];
  failures: number;
  client: { label: string; stats: Stats | null }[];
  server: { label: string; stats: Stats | null }[];
  polling: { meanGetRttMs: number | null; meanPollsPerSession: number | null };
  rounds?: { wallMs: number }[];
  loadBefore: ReturnType<typeof loadAverage>;
  loadAfter: ReturnType<typeof loadAverage>;
  foreignContainersBefore: number;
  foreignContainersAfter: number;
  berthProblems: string[];
  berthRssMiB: number;
  wallSeconds: number;
}

async function runMode(mode: 'combined' | 'split', distDir: string, stamp: string): Promise<RunResult[]> {
  const results: RunResult[] = [];
  await prepareDatabase();
  await clearQueues();
  const berth = await startBerth({ mode, distDir, logName: `start-latency-${stamp}-${mode}`, env: parseEnvList(args.env) });
  const events = new DockerEventRecorder();
  events.start();
  log(`Berth (${mode}) up at ${berth.url}, pids ${berth.processes.map((p) => `${p.role}=${p.child.pid}`).join(' ')}`);
  try {
    for (let w = 0; w < args.warmup && !aborted(); w++) {
      const s = await measureSession(berth, -1 - w);
      await endSession(berth, s);
    }

    const run = async (kind: 'sequential' | 'parallel', k: number): Promise<RunResult> => {
      const loadBefore = loadAverage();
      const foreignBefore = await foreignContainers();
      const started = now();
      const samples: Sample[] = [];
      const rounds: { wallMs: number }[] = [];
      if (kind === 'sequential') {
        for (let i = 0; i < args.n && !aborted(); i++) {
          const s = await measureSession(berth, i);
          samples.push(s);
          await endSession(berth, s);
          if ((i + 1) % 10 === 0) log(`${mode} sequential: ${i + 1}/${args.n}, last POST->started ${fmtMs(s.startedSeenMs)} ms`);
          if (samples.filter((x) => x.error).length > 10) {
            log('more than 10 failures: stopping this run');
            break;
          }
        }
      } else {
        const roundsTotal = Math.ceil(args.n / k);
        for (let r = 0; r < roundsTotal && !aborted(); r++) {
          const t = now();
          const batch = await Promise.all(Array.from({ length: k }, (_, j) => measureSession(berth, r * k + j)));
          rounds.push({ wallMs: now() - t });
          samples.push(...batch);
          await Promise.all(batch.map((s) => endSession(berth, s)));
          log(`${mode} parallel x${k}: round ${r + 1}/${roundsTotal} took ${fmtMs(rounds[rounds.length - 1].wallMs)} ms`);
        }
      }
      await sleep(500); // let the last log lines and engine events arrive
      attachServerTimeline(samples, berth, events);
      const ok = samples.filter((s) => !s.error);
      const rtts = ok.map((s) => s.meanGetRttMs!).filter(Number.isFinite);
      return {
        mode,
        kind,
        parallel: k,
        samples,
        failures: samples.length - ok.length,
        client: summarize(samples, CLIENT_METRICS),
        server: summarize(samples, SERVER_METRICS),
        polling: {
          meanGetRttMs: rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : null,
          meanPollsPerSession: ok.length ? ok.reduce((a, s) => a + (s.polls ?? 0), 0) / ok.length : null,
        },
        rounds: kind === 'parallel' ? rounds : undefined,
        loadBefore,
        loadAfter: loadAverage(),
        foreignContainersBefore: foreignBefore,
        foreignContainersAfter: await foreignContainers(),
        berthProblems: [...berth.problems],
        berthRssMiB: Math.round(berth.rss() / 1024 / 1024),
        wallSeconds: Math.round((now() - started) / 100) / 10,
      };
    };

    log(`${mode}: ${args.n} sessions one at a time`);
    results.push(await run('sequential', 1));
    if (args.parallel > 0 && !aborted()) {
      log(`${mode}: ${args.n} sessions in rounds of ${args.parallel} at once`);
      results.push(await run('parallel', args.parallel));
    }
  } finally {
    events.stop();
    await berth.stop();
  }
  return results;
}

function report(
  machine: Record<string, string | number>,
  baseline: BaselineResults | null,
  runs: RunResult[],
  baselineLoad: ReturnType<typeof loadAverage> | null,
  parallelBaseline: ParallelBaselineResults | null,
): string {
  const out: string[] = [];
  out.push(`# Berth start latency (${new Date().toISOString()})`);
  out.push('');
  if (args.env) out.push(`Berth environment overrides: \`${args.env}\``, '');
  out.push(`Machine: ${machine.nproc} cores, ${machine.cpuModel}, ${machine.memTotalGiB} GiB, kernel ${machine.kernel}, Docker ${machine.dockerInfo}, Node ${machine.node}.`);
  out.push('');
  if (baseline) {
    out.push(`## Engine baselines (${baseline.runs} runs each, load before: ${baselineLoad?.load1}/${baselineLoad?.load5}/${baselineLoad?.load15})`);
    out.push('');
    out.push(
      markdownTable(STATS_HEADER, [
        statsRow(`\`docker run -d --network host ${BENCH.baseImage} sleep\` (CLI)`, baseline.sleepCliRun),
        statsRow('same, create + start via engine API (dockerode)', baseline.sleepApiCreateStart),
        statsRow('`docker rm -f` of it (CLI)', baseline.sleepCliRemove),
        statsRow(`\`docker run -d ${BENCH.terminalImage}\`, Berth's flags (CLI returns)`, baseline.terminalCliRun),
        statsRow('terminal image: `docker run` -> ready callback received', baseline.terminalRunToCallback),
        statsRow('terminal image: `docker run` -> `/.berth/health` 200 (agent direct)', baseline.terminalRunToHealthz),
        statsRow('terminal image: `docker run` -> page first byte (303, 200)', baseline.terminalRunToPage),
        statsRow('terminal image: `docker run` -> WebSocket `echo ok`', baseline.terminalRunToEcho),
        statsRow('terminal image: `docker rm -f`', baseline.terminalRemove),
        statsRow('terminal image WITHOUT `--cpus 1`: `docker run` -> ready callback', baseline.terminalNoCpuLimitRunToCallback),
        statsRow('terminal image WITHOUT `--cpus 1`: `docker run` -> WebSocket `echo ok`', baseline.terminalNoCpuLimitRunToEcho),
      ]),
    );
    if (baseline.errors.length) out.push(`\nBaseline errors: ${baseline.errors.slice(0, 5).join('; ')}`);
    out.push('');
  }
  if (parallelBaseline) {
    const p = parallelBaseline;
    out.push(`## Engine baseline, ${p.parallel} terminal containers at once (\`docker run -d\`, Berth's flags), ${p.rounds} rounds`);
    out.push('');
    out.push(
      markdownTable(STATS_HEADER, [
        statsRow('`docker run` -> ready callback', p.runToCallback),
        statsRow('`docker run` -> WebSocket `echo ok`', p.runToEcho),
        statsRow(`round wall time (first run to last echo of ${p.parallel})`, p.roundWall),
      ]),
    );
    if (p.errors.length) out.push(`\nErrors: ${p.errors.slice(0, 5).join('; ')}`);
    out.push('');
  }
  for (const r of runs) {
    const title = r.kind === 'sequential' ? 'one at a time' : `${r.parallel} at once per round`;
    out.push(`## Berth ${r.mode === 'combined' ? 'API + worker in one process' : 'API and worker as separate processes'}: ${title}`);
    out.push('');
    out.push(
      `${r.samples.length} sessions, ${r.failures} failed, ${r.wallSeconds} s wall. ` +
        `Client: POST, then GET ?wait_seconds=60 (${r.polling.meanPollsPerSession?.toFixed(1)} GETs per session, mean ${r.polling.meanGetRttMs?.toFixed(0)} ms each, held open until \`started\`). ` +
        `Load average before ${r.loadBefore.load1}/${r.loadBefore.load5}/${r.loadBefore.load15}, after ${r.loadAfter.load1}/${r.loadAfter.load5}/${r.loadAfter.load15}; ` +
        `other containers on the engine: ${r.foreignContainersBefore} before, ${r.foreignContainersAfter} after. Berth RSS at the end: ${r.berthRssMiB} MiB.`,
    );
    out.push('');
    out.push(markdownTable(STATS_HEADER, r.client.map((m) => statsRow(m.label, m.stats))));
    out.push('');
    out.push('Where the time goes (Berth logs, `docker events`, session row):');
    out.push('');
    out.push(markdownTable(STATS_HEADER.map((h, i) => (i === 0 ? 'segment (ms)' : h)), r.server.map((m) => statsRow(m.label, m.stats))));
    if (r.rounds?.length) {
      const w = stats(r.rounds.map((x) => x.wallMs));
      out.push('');
      out.push(`Round wall time (first POST to last echo of ${r.parallel}): p50 ${fmtMs(w?.p50)} ms, max ${fmtMs(w?.max)} ms (values >= 10 s shown in s).`);
    }
    if (r.berthProblems.length) out.push(`\nBerth warnings/errors (${r.berthProblems.length}): ${r.berthProblems.slice(0, 5).join(' | ')}`);
    const errors = r.samples.filter((s) => s.error).map((s) => s.error);
    if (errors.length) out.push(`\nFailures: ${errors.slice(0, 5).join(' | ')}`);
    out.push('');
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  if (args.n < 1) throw new Error('--n must be at least 1');
  const modes: ('combined' | 'split')[] = args.mode === 'both' ? ['combined', 'split'] : [args.mode as 'combined' | 'split'];
  if (!modes.every((m) => m === 'combined' || m === 'split')) throw new Error('--mode must be combined, split or both');
  await requireImage(BENCH.terminalImage, 'run scripts/build-images.sh');
  await requireImage(BENCH.baseImage, 'run scripts/build-base-image.sh');
  const machine = machineInfo();
  const stamp = timestampForFile();
  const leftovers = await removeBenchContainers();
  if (leftovers) log(`removed ${leftovers} left-over bench containers`);

  let baseline: BaselineResults | null = null;
  let parallelBaseline: ParallelBaselineResults | null = null;
  let baselineLoad: ReturnType<typeof loadAverage> | null = null;
  if (!args['skip-baseline']) {
    baselineLoad = loadAverage();
    baseline = await runBaselines(args['baseline-runs']);
    if (args.parallel > 0) parallelBaseline = await runParallelBaseline(args.parallel, Math.ceil(args.n / args.parallel));
  }

  const dist = snapshotDist();
  const runs: RunResult[] = [];
  try {
    for (const mode of modes) {
      if (aborted()) break;
      runs.push(...(await runMode(mode, dist.dir, stamp)));
    }
  } finally {
    dist.remove();
    const removed = await removeBenchContainers();
    if (removed) log(`removed ${removed} bench containers left behind`);
    const remaining = await benchContainerCount();
    if (remaining) log(`WARNING: ${remaining} berth.instance=${BENCH.instance} containers remain`);
  }

  const markdown = report(machine, baseline, runs, baselineLoad, parallelBaseline);
  const file = writeJson(`start-latency-${stamp}.json`, { args, machine, baselineLoad, baseline, parallelBaseline, runs, markdown });
  const mdFile = writeText(`start-latency-${stamp}.md`, markdown);
  console.log(markdown);
  console.log(`\nResults: ${path.relative(ROOT, file)} and ${path.relative(ROOT, mdFile)}`);
}

main().then(
  () => process.exit(0),
  async (error: Error) => {
    console.error(`start-latency failed: ${error.stack ?? error.message}`);
    await removeBenchContainers().catch(() => undefined);
    process.exit(1);
  },
);
