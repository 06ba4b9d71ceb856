/**
 * The long chaos run: `npm run chaos -- [--duration 300] [--rate 2] ...`
 * (scripts/chaos.sh builds dist/ and runs this with ts-node).
 *
 * Starts a private Postgres, Redis and Docker engine and Berth on them (two
 * API processes, two workers, the built entry points), drives a steady
 * stream of launches and deletes, and meanwhile, one after the other:
 * kill -9s workers and API processes mid-provision, restarts Redis with and
 * without its data and flushes it, restarts Postgres (clean and crash) and
 * the Docker engine (clean and kill -9). Then it lets everything settle,
 * counts what was lost, kept past its deadline, duplicated or orphaned, and
 * every 500, and writes the figures into docs/RELIABILITY.md (between the
 * generated-section markers) with the command, the machine and the timeline.
 * Exits 1 when a figure that must be zero is not.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { TimelineEntry } from './chaos-actions';
import { CheckOptions, Figures, nonZero, sessionFacts } from './checker';
import { ChaosEnvironment } from './environment';
import { DEFAULT_LOAD, HealthWatcher, LoadDriver, LoadOptions } from './load-driver';
import { clock, sleep } from './util';

interface Args {
  duration: number;
  rate: number;
  cleanupIntervalMinutes: number;
  startTimeoutSeconds: number;
  report: string | null;
  logs: string;
  faultEvery: number;
}

function parseArgs(argv: string[]): Args {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const args: Args = {
    duration: 300,
    rate: DEFAULT_LOAD.rate,
    cleanupIntervalMinutes: 1,
    startTimeoutSeconds: 60,
    report: join(__dirname, '..', '..', 'docs', 'RELIABILITY.md'),
    logs: `/var/tmp/berth-chaos-${stamp}`,
    faultEvery: 20,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    if (flag === '--duration') args.duration = Number(value());
    else if (flag === '--rate') args.rate = Number(value());
    else if (flag === '--cleanup-interval') args.cleanupIntervalMinutes = Number(value());
    else if (flag === '--start-timeout') args.startTimeoutSeconds = Number(value());
    else if (flag === '--report') args.report = value();
    else if (flag === '--no-report') args.report = null;
    else if (flag === '--logs') args.logs = value();
    else if (flag === '--fault-every') args.faultEvery = Number(value());
    else if (flag === '--help' || flag === '-h') {
      console.log(
        'npm run chaos -- [--duration SECONDS (300)] [--rate LAUNCHES_PER_SECOND (2)] [--fault-every SECONDS (20)]\n' +
          '                 [--cleanup-interval MINUTES (1)] [--start-timeout SECONDS (60)]\n' +
          '                 [--report FILE (docs/RELIABILITY.md) | --no-report] [--logs DIR]',
      );
      process.exit(0);
    } else throw new Error(`unknown flag ${flag} (try --help)`);
  }
  if (!(args.duration >= 60)) throw new Error('--duration must be at least 60 seconds');
  if (!(args.rate > 0 && args.rate <= 20)) throw new Error('--rate must be within (0, 20]');
  if (!(args.faultEvery >= 5)) throw new Error('--fault-every must be at least 5 seconds');
  return args;
}

const log = (line: string) => console.log(`[chaos] ${line}`);

function sh(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

function machine(): Record<string, string> {
  const os = existsSync('/etc/os-release') ? (/PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '?') : '?';
  const commit = sh('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'migrations']);
  return {
    os,
    kernel: sh('uname', ['-r']),
    cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    docker: sh('dockerd', ['--version']),
    postgres: sh('psql', ['--version']),
    redis: sh('redis-server', ['--version']).split(' ').slice(0, 3).join(' '),
    // BERTH_CHAOS_COMMIT: what BERTH_CHAOS_DIST was built from, when the run uses another build than this checkout's.
    commit: process.env.BERTH_CHAOS_COMMIT ?? `${commit}${dirty && dirty !== '?' ? ' (with uncommitted changes in src/ or migrations/)' : ''}`,
  };
}

const seconds = (ms: number | null) => (ms === null ? '–' : `${(ms / 1000).toFixed(1)} s`);
const millis = (ms: number | null) => (ms === null ? '–' : `${Math.round(ms)} ms`);

function report(args: Args, started: number, ended: number, env: ChaosEnvironment, driver: LoadDriver, figures: Figures, timeline: TimelineEntry[], facts: Record<string, string>, load: LoadOptions): string {
  const zero = nonZero(figures);
  const ok = (count: number) => (count === 0 ? '0' : `**${count}**`);
  const command = `npm run chaos -- --duration ${args.duration} --rate ${args.rate}` +
    (args.faultEvery !== 20 ? ` --fault-every ${args.faultEvery}` : '') +
    (args.cleanupIntervalMinutes !== 1 ? ` --cleanup-interval ${args.cleanupIntervalMinutes}` : '') +
    (args.startTimeoutSeconds !== 60 ? ` --start-timeout ${args.startTimeoutSeconds}` : '');
  const lines: string[] = [];
  lines.push(`### Latest run: ${new Date(started).toISOString().slice(0, 16).replace('T', ' ')} UTC, ${Object.keys(zero).length === 0 ? 'all counts zero' : `**non-zero: ${Object.entries(zero).map(([k, v]) => `${k} ${v}`).join(', ')}**`}`);
  lines.push('');
  lines.push('```sh');
  lines.push(command);
  lines.push('```');
  lines.push('');
  lines.push(`Commit ${facts.commit}. ${facts.os}, kernel ${facts.kernel}, ${facts.cpus}, ${facts.memory}; Node ${facts.node}; ${facts.docker}; ${facts.postgres}; ${facts.redis}.`);
  lines.push('');
  lines.push(
    `Load: ${args.rate} launches/s for ${args.duration} s (terminal image); ${Math.round(load.expireShare * 100)} % left to expire with a TTL of ` +
      `${load.shortTtlSeconds[0]}-${load.shortTtlSeconds[1]} s, the rest deleted ${load.deleteAfterSeconds[0]}-${load.deleteAfterSeconds[1]} s after acceptance ` +
      `through the other API process (${Math.round(load.keepShare * 100)} % of those kept ${load.keepSeconds[0]}-${load.keepSeconds[1]} s). Berth: 2 API processes, 2 workers (dist/ entry points), CLEANUP_INTERVAL_MINUTES=${args.cleanupIntervalMinutes}, ` +
      `START_TIMEOUT_SECONDS=${args.startTimeoutSeconds}, everything else default; session ports ${env.cluster.portRange}. ` +
      `Wall time ${seconds(ended - started)} including the settle.`,
  );
  lines.push('');
  lines.push('| figure (must be 0) | count | detail |');
  lines.push('| --- | ---: | --- |');
  lines.push(`| sessions lost (accepted, never started nor ended within ${seconds(CHECK.startBoundMs)}, or not final at the end) | ${ok(figures.lost.count)} | ${figures.lost.sessions.slice(0, 3).map((s) => `${s.id.slice(0, 8)}: ${s.why}`).join('; ')} |`);
  lines.push(`| sessions failed by the chaos (other than containers an engine restart stopped) | ${ok(figures.failedByChaos.count)} | ${figures.failedByChaos.sessions.slice(0, 3).map((s) => `${s.id.slice(0, 8)}: ${s.error}`).join('; ')} |`);
  lines.push(`| sessions kept past their deadline (> ${seconds(figures.keptPastDeadline.toleranceMs)}) | ${ok(figures.keptPastDeadline.count)} | ${figures.keptPastDeadline.deadlinesReached} deadlines reached; late by p50 ${millis(figures.keptPastDeadline.p50LatenessMs)}, p99 ${millis(figures.keptPastDeadline.p99LatenessMs)}, max ${millis(figures.keptPastDeadline.maxLatenessMs)} (max ${millis(figures.keptPastDeadline.maxAdjustedLatenessMs)} counted from the end of an outage the deadline fell into) |`);
  lines.push(`| duplicated containers (two for one session at once) | ${ok(figures.duplicates.count)} | ${figures.containersCreated} containers created in all; ${figures.recreated.count} session(s) got a second one after the first was gone |`);
  lines.push(`| orphaned containers after the settle | ${ok(figures.orphans.count)} | ${figures.orphans.details.slice(0, 3).map((o) => `${o.name} (${o.status})`).join('; ')} |`);
  lines.push(`| double transitions (started, stopping or ended twice) | ${ok(figures.doubleTransitions.count)} | |`);
  lines.push(`| API 5xx other than 503 | ${ok(figures.api.serverErrors)} | ${figures.api.examples.slice(0, 2).join('; ')} |`);
  lines.push(`| API 503 without Retry-After | ${ok(figures.api.unavailableWithoutRetryAfter)} | ${figures.api.unavailable} answers were 503 with Retry-After |`);
  lines.push(`| "request failed" (500) lines in the API logs | ${ok(figures.serverErrorsLogged.count)} | ${figures.serverErrorsLogged.examples.slice(0, 2).join('; ')} |`);
  lines.push(`| Berth processes that died on their own | ${ok(figures.processes.crashes)} | ${figures.processes.failedStarts} start(s) failed while a dependency was down and were retried by the supervisor |`);
  lines.push('');
  lines.push(
    `Sessions: ${figures.sessions.total} created (${driver.launches.attempted} launches attempted, ${driver.launches.accepted} accepted, ` +
      `${driver.launches.gaveUp} given up after ${load.retryForMs / 1000} s of retries); ${figures.sessions.started} started; ` +
      `ended ${figures.sessions.stopped} stopped, ${figures.sessions.expired} expired, ${figures.sessions.failed} failed ` +
      `(${figures.failedByEngineRestart.count} of them because an engine restart stopped their container); ${figures.sessions.endedBeforeStart} were deleted before they started. ` +
      `Time to start: p50 ${millis(figures.startLatencyMs.p50)}, p99 ${millis(figures.startLatencyMs.p99)}, max ${millis(figures.startLatencyMs.max)}. ` +
      `${figures.deadContainers.count} session(s) were still \`started\` after their container had died (engine restarts), for p50 ${seconds(figures.deadContainers.p50Ms)}, max ${seconds(figures.deadContainers.maxMs)}. ` +
      `Container gone after its session ended: p50 ${millis(figures.containerGoneAfterEndMs.p50)}, p99 ${millis(figures.containerGoneAfterEndMs.p99)}, max ${millis(figures.containerGoneAfterEndMs.max)}. ` +
      `API: ${figures.api.requests} requests, ${figures.api.unavailable} answered 503 (with Retry-After), ${figures.api.noAnswer} not answered (process down or killed mid-request). ` +
      `Everything settled ${seconds(figures.settledAfterMs)} after the load stopped.`,
  );
  lines.push('');
  lines.push('| t (s) | fault | took | what was in flight / what happened |');
  lines.push('| ---: | --- | ---: | --- |');
  for (const entry of timeline) {
    lines.push(`| ${((entry.start - started) / 1000).toFixed(0)} | ${entry.action} | ${seconds(entry.end - entry.start)} | ${entry.detail} |`);
  }
  if (figures.processes.details.length) {
    lines.push('');
    lines.push(`Process exits nobody asked for: ${figures.processes.details.join('; ')}.`);
  }
  return lines.join('\n');
}

const CHECK: CheckOptions & { settleTimeoutMs: number } = {
  startBoundMs: 90_000,
  deadlineToleranceMs: 5_000,
  explainFailureMs: 90_000,
  settleTimeoutMs: 240_000,
};

const BEGIN = '<!-- chaos:begin (written by npm run chaos) -->';
const END = '<!-- chaos:end -->';

function writeReport(path: string, section: string): void {
  const current = existsSync(path) ? readFileSync(path, 'utf8') : `# Reliability\n\n${BEGIN}\n${END}\n`;
  const begin = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  const next = begin >= 0 && end > begin ? `${current.slice(0, begin + BEGIN.length)}\n${section}\n${current.slice(end)}` : `${current.trimEnd()}\n\n${BEGIN}\n${section}\n${END}\n`;
  writeFileSync(path, next);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  mkdirSync(args.logs, { recursive: true });
  const facts = machine();
  log(`logs in ${args.logs}`);
  const env = await ChaosEnvironment.start({ logs: args.logs, cleanupIntervalMinutes: args.cleanupIntervalMinutes, startTimeoutSeconds: args.startTimeoutSeconds, log });
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log('interrupted: tearing down (again to force)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let code = 1;
  try {
    const load: LoadOptions = { ...DEFAULT_LOAD, rate: args.rate };
    const driver = env.driver(load);
    const health = new HealthWatcher(env.client, 1000);
    const { chaos, cluster } = env;
    const [api1, api2] = cluster.apis;
    const [worker1, worker2] = cluster.workers;
    const faults: (() => Promise<unknown>)[] = [
      () => chaos.kill(worker1, { downMs: 2000, midProvision: true }),
      () => chaos.kill(api1, { downMs: 2000, midProvision: true }),
      () => chaos.restartRedis({ keepData: true, signal: 'SIGKILL', downMs: 3000 }),
      () => chaos.kill(worker2, { downMs: 1000, midProvision: true }),
      () => chaos.restartPostgres({ mode: 'fast', downMs: 8000 }),
      () => chaos.restartRedis({ keepData: false, signal: 'SIGTERM', downMs: 2000 }),
      () => chaos.killTogether([api2, worker1], { downMs: 2000, midProvision: true }),
      () => chaos.restartDocker({ signal: 'SIGTERM', downMs: 2000 }),
      () => chaos.flushRedis(),
      // Longer than a job's retries with backoff (~15 s): jobs must wait the outage out.
      () => chaos.restartPostgres({ mode: 'immediate', downMs: 20_000 }),
      () => chaos.kill(worker2, { signal: 'SIGTERM', downMs: 1000, midProvision: true }),
      () => chaos.restartDocker({ signal: 'SIGKILL', downMs: 2000 }),
    ];
    const started = Date.now();
    health.start();
    driver.start();
    const warmup = 15_000;
    const quiet = 20_000;
    // The faults in turn, one every --fault-every seconds (a slow one delays the next), from the top again when the list is done.
    const spacing = args.faultEvery * 1000;
    log(`${clock()} load started (${args.rate}/s); a fault every ${(spacing / 1000).toFixed(0)} s for ${args.duration} s`);
    for (let i = 0; !interrupted; i++) {
      const at = started + warmup + i * spacing;
      if (at > started + args.duration * 1000 - quiet) break;
      await sleep(Math.max(0, at - Date.now()));
      if (interrupted) break;
      await faults[i % faults.length]();
    }
    while (!interrupted && Date.now() < started + args.duration * 1000) await sleep(250);
    log(`${clock()} load stopping; deleting what is left and waiting for every request`);
    await driver.drain();
    await health.stop();
    await cluster.allReady().catch((error: Error) => log(`not every process is up: ${error.message}`));
    log(`${clock()} settling (up to ${CHECK.settleTimeoutMs / 1000} s)`);
    const figures = await env.check(started, CHECK, driver);
    const ended = Date.now();
    writeFileSync(join(args.logs, 'figures.json'), JSON.stringify({ args, facts, timeline: chaos.timeline, figures, launches: driver.launches, deletes: driver.deletes }, null, 2));
    writeFileSync(join(args.logs, 'sessions.json'), JSON.stringify({ sessions: await sessionFacts(env.db, started), containers: [...env.observer.containers.values()], health: health.samples, calls: env.client.records }, null, 1));
    const section = report(args, started, ended, env, driver, figures, chaos.timeline, facts, load);
    console.log(`\n${section}\n`);
    if (args.report && !interrupted) {
      writeReport(args.report, section);
      log(`figures written to ${args.report}`);
    }
    const problems = nonZero(figures);
    code = Object.keys(problems).length === 0 && !interrupted ? 0 : 1;
    log(code === 0 ? 'all counts zero' : `non-zero: ${JSON.stringify(problems)} (details in ${join(args.logs, 'figures.json')})`);
  } finally {
    await env.close();
    log(`torn down; logs kept in ${args.logs}`);
  }
  process.exit(code);
}

main().catch((error: Error) => {
  console.error(`[chaos] failed: ${error.stack ?? error.message}`);
  process.exit(1);
});
