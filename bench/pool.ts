/**
 * Warm-pool claims: POST -> `started` when the pool has a container ready.
 *
 *   npx ts-node --transpile-only bench/pool.ts [--kind terminals|browsers] [--pool 10]
 *       [--n 200] [--interval-ms 300] [--burst 40] [--warmup 3] [--check-every 20]
 *       [--mode combined|split] [--env KEY=VALUE,...]
 *
 * Starts Berth with POOL_TERMINALS (or POOL_BROWSERS_HEADLESS for `--kind browsers`,
 * launched with {"headless": true}) = --pool, waits until the pool is full, then:
 *
 * 1. spaced: --n launches one at a time, each sent only once the pool holds a ready
 *    container again and at least --interval-ms after the previous one (the pool keeps
 *    up). A claim answers 201 with the session `started` in the POST's own response;
 *    POST -> `started` is the POST's round trip. Every --check-every-th session is
 *    opened through the gateway (terminal: WebSocket `echo ok`; browser: CDP
 *    /json/version) to show a claimed container is really usable.
 * 2. back-to-back: with the pool full again, --burst launches one after the other with
 *    no pause: the first --pool are claims, then the pool runs dry and launches take
 *    the cold path (202, then GET ?wait_seconds until `started`). Reported per
 *    position, so the switch from warm to cold is visible.
 *
 * Sessions stay up until the end of each phase (their teardown would otherwise run
 * on the same 2 cores as the next claim), then are DELETEd.
 * Output: markdown on stdout, JSON in bench/results/pool-<time>.json.
 */
import path from 'node:path';
import {
  ADMIN,
  BENCH,
  ROOT,
  benchContainerCount,
  clearQueues,
  deleteSession,
  fmtMs,
  foreignContainers,
  launchUntilStarted,
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
  request,
  requireImage,
  RunningBerth,
  sleep,
  snapshotDist,
  startBerth,
  stats,
  STATS_HEADER,
  statsRow,
  timestampForFile,
  waitFor,
  websocketEcho,
  writeJson,
  writeText,
} from './lib';

const args = parseArgs(process.argv.slice(2), {
  kind: 'terminals',
  pool: 10,
  n: 200,
  'interval-ms': 300,
  burst: 40,
  warmup: 3,
  'check-every': 20,
  mode: 'combined',
  env: '',
});

const aborted = onInterrupt('interrupted: finishing the current launch, then cleaning up (Ctrl-C again to exit at once)');
const KIND = args.kind === 'browsers' ? 'browsers' : 'terminals';
const VARIANT = KIND === 'browsers' ? 'browser-headless' : 'terminal';
const LAUNCH_BODY = KIND === 'browsers' ? { headless: true } : {};

interface Claim {
  index: number;
  id?: string;
  postStatus?: number;
  /** POST sent -> its response complete (ms). */
  postMs?: number;
  /** POST sent -> `started` known to the client (the POST itself for a claim). */
  startedMs?: number;
  /** Ready containers in the pool just before the POST. */
  warmBefore?: number;
  check?: string;
  error?: string;
}

async function poolState(berth: RunningBerth): Promise<{ warm: number; warming: number; size: number }> {
  const res = await request('GET', `${berth.url}/api/v1/pool`, { headers: ADMIN });
  if (res.status !== 200) throw new Error(`GET /api/v1/pool answered ${res.status}`);
  const variant = (JSON.parse(res.body).variants as { variant: string; warm: number; warming: number; size: number }[]).find((v) => v.variant === VARIANT);
  if (!variant) throw new Error(`pool variant ${VARIANT} not configured`);
  return variant;
}

async function waitPool(berth: RunningBerth, atLeast: number, timeoutMs: number): Promise<number> {
  let warm = 0;
  await waitFor(async () => (warm = (await poolState(berth)).warm) >= atLeast, timeoutMs, `${atLeast} warm ${VARIANT} containers`, 20);
  return warm;
}

/** Proves the claimed session works through the gateway. */
async function usable(berth: RunningBerth, session: { path_url: string | null; access_token: string }): Promise<string> {
  if (KIND === 'terminals') {
    const t = now();
    await websocketEcho(session.path_url!, session.access_token, 15_000);
    return `echo ok in ${Math.round(now() - t)} ms`;
  }
  const res = await request('GET', `${session.path_url}json/version`, { headers: { authorization: `Bearer ${session.access_token}` } });
  if (res.status !== 200 || !res.body.includes('Browser')) throw new Error(`CDP /json/version answered ${res.status}`);
  return `CDP ${JSON.parse(res.body).Browser}`;
}

async function launch(berth: RunningBerth, index: number, warmBefore?: number): Promise<Claim> {
  const claim: Claim = { index, warmBefore };
  try {
    const r = await launchUntilStarted(berth.url, KIND, LAUNCH_BODY, 120_000);
    claim.id = r.session.id;
    claim.postStatus = r.postStatus;
    claim.postMs = r.tPost - r.t0;
    claim.startedMs = r.tStarted - r.t0;
    if (args['check-every'] > 0 && index >= 0 && index % args['check-every'] === 0) claim.check = await usable(berth, r.session);
  } catch (error) {
    claim.error = (error as Error).message;
    log(`launch #${index} failed: ${claim.error}`);
  }
  return claim;
}

async function deleteAll(berth: RunningBerth, claims: Claim[]): Promise<void> {
  const ids = claims.map((c) => c.id).filter((id): id is string => !!id);
  for (let i = 0; i < ids.length; i += 8) {
    await Promise.all(ids.slice(i, i + 8).map((id) => deleteSession(berth.url, id).catch((error: Error) => log(`DELETE ${id}: ${error.message}`))));
  }
  // Only the pool's containers should remain once the teardowns are done.
  await waitFor(async () => (await benchContainerCount()) <= args.pool, 180_000, 'ended sessions\' containers to go', 250).catch((error: Error) => log(error.message));
}

interface Phase {
  name: string;
  claims: Claim[];
  loadBefore: ReturnType<typeof loadAverage>;
  loadAfter: ReturnType<typeof loadAverage>;
  foreignContainers: number;
  wallSeconds: number;
}

async function spaced(berth: RunningBerth): Promise<Phase> {
  const loadBefore = loadAverage();
  const foreign = await foreignContainers();
  const t = now();
  const claims: Claim[] = [];
  let last = -Infinity;
  for (let i = 0; i < args.n && !aborted(); i++) {
    const warm = await waitPool(berth, 1, 120_000);
    const wait = last + args['interval-ms'] - now();
    if (wait > 0) await sleep(wait);
    last = now();
    claims.push(await launch(berth, i, warm));
    if ((i + 1) % 20 === 0) {
      const s = stats(claims.filter((c) => c.postStatus === 201).map((c) => c.startedMs!));
      log(`spaced: ${i + 1}/${args.n}, claims p50 ${fmtMs(s?.p50)} ms p99 ${fmtMs(s?.p99)} ms, cold ${claims.filter((c) => c.postStatus === 202).length}, load ${loadAverage().load1}`);
    }
  }
  const phase = { name: 'spaced', claims, loadBefore, loadAfter: loadAverage(), foreignContainers: foreign, wallSeconds: (now() - t) / 1000 };
  log(`spaced: deleting ${claims.length} sessions`);
  await deleteAll(berth, claims);
  return phase;
}

async function backToBack(berth: RunningBerth): Promise<Phase> {
  log(`back-to-back: waiting for the pool to be full (${args.pool})`);
  await waitPool(berth, args.pool, 300_000);
  await sleep(3000); // let the refill's engine work finish
  const loadBefore = loadAverage();
  const foreign = await foreignContainers();
  const t = now();
  const claims: Claim[] = [];
  for (let i = 0; i < args.burst && !aborted(); i++) claims.push(await launch(berth, i));
  const phase = { name: 'back-to-back', claims, loadBefore, loadAfter: loadAverage(), foreignContainers: foreign, wallSeconds: (now() - t) / 1000 };
  log(`back-to-back: ${claims.filter((c) => c.postStatus === 201).length} claims, ${claims.filter((c) => c.postStatus === 202).length} cold; deleting`);
  await deleteAll(berth, claims);
  return phase;
}

function report(machine: Record<string, string | number>, phases: Phase[], berthRssMiB: number, problems: string[]): string {
  const out: string[] = [];
  const what = KIND === 'browsers' ? 'headless browser (`POST /api/v1/browsers {"headless": true}`)' : 'terminal (`POST /api/v1/terminals`)';
  out.push(`# Berth warm-pool claims: ${what} (${new Date().toISOString()})`);
  out.push('');
  out.push(
    `Machine: ${machine.nproc} cores, ${machine.cpuModel}, ${machine.memTotalGiB} GiB, kernel ${machine.kernel}, Docker ${machine.dockerInfo}, Node ${machine.node}. ` +
      `Berth ${args.mode === 'combined' ? 'API + worker in one process' : 'API and worker as separate processes'}, pool size ${args.pool}${args.env ? `, overrides \`${args.env}\`` : ''}. Berth RSS at the end: ${berthRssMiB} MiB.`,
  );
  out.push('');
  for (const phase of phases) {
    const ok = phase.claims.filter((c) => !c.error);
    const warm = ok.filter((c) => c.postStatus === 201);
    const cold = ok.filter((c) => c.postStatus === 202);
    out.push(
      `## ${phase.name === 'spaced' ? `Spaced: ${phase.claims.length} launches, >= ${args['interval-ms']} ms apart, each once the pool has a ready container` : `Back-to-back: ${phase.claims.length} launches with no pause, from a full pool of ${args.pool}`}`,
    );
    out.push('');
    out.push(
      `${warm.length} claimed from the pool (201), ${cold.length} cold (202), ${phase.claims.length - ok.length} failed; ${phase.wallSeconds.toFixed(1)} s wall. ` +
        `Load average before ${phase.loadBefore.load1}/${phase.loadBefore.load5}/${phase.loadBefore.load15}, after ${phase.loadAfter.load1}/${phase.loadAfter.load5}/${phase.loadAfter.load15}; other containers on the engine: ${phase.foreignContainers}.`,
    );
    out.push('');
    out.push(
      markdownTable(STATS_HEADER, [
        statsRow('**warm claim: POST -> `started` (201, in the POST)**', stats(warm.map((c) => c.startedMs!))),
        statsRow('cold fallback: POST -> 202', stats(cold.map((c) => c.postMs!))),
        statsRow('cold fallback: POST -> `started` (GET ?wait_seconds)', stats(cold.map((c) => c.startedMs!))),
        statsRow('all launches: POST -> `started`', stats(ok.map((c) => c.startedMs!))),
      ]),
    );
    if (phase.name === 'back-to-back') {
      out.push('');
      out.push('Per launch, in order (status, POST -> `started` ms):');
      out.push('');
      out.push(phase.claims.map((c) => `#${c.index + 1} ${c.error ? 'failed' : `${c.postStatus} ${fmtMs(c.startedMs)}`}`).join(', '));
    }
    const checks = phase.claims.filter((c) => c.check);
    if (checks.length) out.push('', `Usable after the claim (every ${args['check-every']}th): ${checks.map((c) => c.check).join('; ')}.`);
    const errors = phase.claims.filter((c) => c.error).map((c) => c.error);
    if (errors.length) out.push('', `Failures: ${errors.slice(0, 5).join(' | ')}`);
    out.push('');
  }
  if (problems.length) out.push(`Berth warnings/errors (${problems.length}): ${problems.slice(0, 5).join(' | ')}`, '');
  return out.join('\n');
}

async function main(): Promise<void> {
  await requireImage(KIND === 'browsers' ? BENCH.browserImage : BENCH.terminalImage, 'run scripts/build-images.sh');
  const machine = machineInfo();
  const stamp = timestampForFile();
  const leftovers = await removeBenchContainers();
  if (leftovers) log(`removed ${leftovers} left-over bench containers`);
  await prepareDatabase();
  await clearQueues();
  const dist = snapshotDist();
  const poolEnv: Record<string, string> = KIND === 'browsers' ? { POOL_BROWSERS_HEADLESS: String(args.pool) } : { POOL_TERMINALS: String(args.pool) };
  let berth: RunningBerth | undefined;
  const phases: Phase[] = [];
  let rss = 0;
  try {
    berth = await startBerth({
      mode: args.mode as 'combined' | 'split',
      distDir: dist.dir,
      logName: `pool-${KIND}-${stamp}`,
      env: { TERMINAL_TTL_HOURS: '4', BROWSER_TTL_HOURS: '4', ...poolEnv, ...parseEnvList(args.env) },
    });
    log(`Berth (${args.mode}) up at ${berth.url}; filling the pool (${args.pool} ${VARIANT})`);
    await waitPool(berth, args.pool, 300_000);
    const warmups: Claim[] = [];
    for (let i = 0; i < args.warmup; i++) {
      await waitPool(berth, 1, 60_000);
      warmups.push(await launch(berth, -1 - i));
    }
    await deleteAll(berth, warmups);
    if (!aborted()) phases.push(await spaced(berth));
    if (!aborted() && args.burst > 0) phases.push(await backToBack(berth));
    rss = Math.round(berth.rss() / 1024 / 1024);
  } finally {
    await berth?.stop();
    dist.remove();
    const removed = await removeBenchContainers();
    if (removed) log(`removed ${removed} bench containers (the pool's own included)`);
  }
  const markdown = report(machine, phases, rss, berth?.problems ?? []);
  const file = writeJson(`pool-${KIND}-${stamp}.json`, { args, machine, phases, markdown });
  const mdFile = writeText(`pool-${KIND}-${stamp}.md`, markdown);
  console.log(markdown);
  console.log(`\nResults: ${path.relative(ROOT, file)} and ${path.relative(ROOT, mdFile)}`);
}

main().then(
  () => process.exit(0),
  async (error: Error) => {
    console.error(`pool failed: ${error.stack ?? error.message}`);
    await removeBenchContainers().catch(() => undefined);
    process.exit(1);
  },
);
