/**
 * What the Docker engine alone costs, to compare Berth's numbers against:
 *
 * 1. `docker run -d` of a sleeping debian:bookworm-slim on the host network (CLI wall time),
 * 2. the same create + start through the engine API (dockerode, as Berth calls it),
 * 3. the terminal image itself, run by hand with Berth's hardening flags and limits
 *    (TERMINAL_CPUS=1, 256 MiB): `docker run -d` -> the session agent's ready callback
 *    (received by a stand-in server here) -> `/.berth/health` -> page -> echo, talking to
 *    the agent directly with its secret header (no gateway);
 *    alternated with runs without `--cpus` to show what the CPU quota costs at start-up,
 * 4. optionally K terminal containers started at once by hand (the engine's own
 *    concurrency floor for `--parallel K`).
 *
 * Everything is labelled `berth.bench=baseline` and removed after each run.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { BENCH, docker, freePort, log, now, randomName, request, sleep, Stats, stats, websocketEcho } from './lib';

function dockerCli(args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('docker', args, { timeout: timeoutMs }, (error, stdout, stderr) => (error ? reject(new Error(`docker ${args[0]}: ${stderr || error.message}`)) : resolve(stdout.trim()))),
  );
}

export interface BaselineResults {
  runs: number;
  sleepCliRun: Stats | null;
  sleepCliRemove: Stats | null;
  sleepApiCreateStart: Stats | null;
  terminalCliRun: Stats | null;
  terminalRunToCallback: Stats | null;
  terminalRunToHealthz: Stats | null;
  terminalRunToPage: Stats | null;
  terminalRunToEcho: Stats | null;
  terminalRemove: Stats | null;
  /** The same image without `--cpus` (Berth's TERMINAL_CPUS=1 is a CFS quota). Alternated with the runs above. */
  terminalNoCpuLimitRunToCallback: Stats | null;
  terminalNoCpuLimitRunToEcho: Stats | null;
  errors: string[];
}

export interface ParallelBaselineResults {
  parallel: number;
  rounds: number;
  runToCallback: Stats | null;
  runToEcho: Stats | null;
  roundWall: Stats | null;
  errors: string[];
}

/** A stand-in for Berth's callback API: records when each container reports ready (`POST /tunnel {session_id}`). */
export class CallbackReceiver {
  private readonly waiting = new Map<string, (at: number) => void>();
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = now();
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (req.url?.endsWith('/tunnel')) this.waiting.get(body.session_id)?.(at);
      } catch {
        // ignore
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"started"}');
    });
  });
  url = '';

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  expect(sessionId: string, timeoutMs = 30_000): Promise<{ at: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(sessionId);
        reject(new Error(`no tunnel callback within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(sessionId, (at) => {
        clearTimeout(timer);
        this.waiting.delete(sessionId);
        resolve({ at });
      });
    });
  }

  close(): void {
    this.server.close();
  }
}

interface TerminalRun {
  run: number;
  callback: number;
  healthz?: number;
  page?: number;
  echo: number;
  /** performance.now() of the echo, to compute a round's wall time. */
  echoAt: number;
  remove: number;
}

/** `docker run` arguments for a terminal container the way Berth's Docker adapter creates it (docker-container-options.ts). */
export function terminalRunArgs(name: string, options: { cpuLimit: boolean; port: number; secret: string; sessionId: string; callbackUrl: string }): string[] {
  const tmpfs = 'rw,nosuid,nodev,size=67108864';
  return [
    'run', '-d', '--name', name, '--label', 'berth.bench=baseline',
    '--network', 'host', '--read-only',
    '--tmpfs', `/tmp:${tmpfs}`, '--tmpfs', `/home/berth:${tmpfs},uid=1000,gid=1000`,
    '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true',
    '--memory', '256m', '--memory-swap', '256m', ...(options.cpuLimit ? ['--cpus', '1'] : []), '--pids-limit', '256',
    '--user', '1000:1000', '--stop-signal', 'SIGTERM', '--stop-timeout', '3', '--restart', 'no',
    '--log-driver', 'json-file', '--log-opt', 'max-size=1m', '--log-opt', 'max-file=1',
    '-e', `BERTH_SESSION_ID=${options.sessionId}`, '-e', `BERTH_CALLBACK_URL=${options.callbackUrl}`,
    '-e', 'BERTH_CALLBACK_TOKEN=baseline-callback-token',
    '-e', `BERTH_SECRET_SHA256=${createHash('sha256').update(options.secret).digest('hex')}`,
    '-e', 'BERTH_LISTEN_HOST=127.0.0.1', '-e', `BERTH_PORT=${options.port}`,
    BENCH.terminalImage,
  ];
}

/** One terminal container started by hand the way Berth starts it; times are ms since `docker run` was spawned. */
async function runTerminalOnce(receiver: CallbackReceiver, options: { cpuLimit: boolean; full: boolean }): Promise<TerminalRun> {
  const sessionId = randomUUID();
  const secret = randomBytes(32).toString('base64url');
  const name = randomName('bench-baseline-terminal');
  const port = await freePort();
  const callback = receiver.expect(sessionId);
  callback.catch(() => undefined);
  const url = `http://127.0.0.1:${port}/`;
  const headers = { 'x-berth-secret': secret };
  const t0 = now();
  try {
    await dockerCli(terminalRunArgs(name, { cpuLimit: options.cpuLimit, port, secret, sessionId, callbackUrl: receiver.url }));
    const run = now() - t0;
    const { at } = await callback;
    const result: Partial<TerminalRun> = { run, callback: at - t0 };
    if (options.full) {
      const health = await request('GET', `${url}.berth/health`, { agent: false, headers });
      if (health.status !== 200) throw new Error(`/.berth/health answered ${health.status}`);
      result.healthz = health.tFirstByte - t0;
      const page = await request('GET', url, { agent: false, headers });
      if (page.status !== 200) throw new Error(`page answered ${page.status}`);
      result.page = page.tFirstByte - t0;
    }
    const ws = await websocketEcho(url, secret, 15_000, headers);
    result.echo = ws.tEcho - t0;
    result.echoAt = ws.tEcho;
    const t1 = now();
    await dockerCli(['rm', '-f', name]);
    result.remove = now() - t1;
    return result as TerminalRun;
  } catch (error) {
    await dockerCli(['rm', '-f', name]).catch(() => undefined);
    throw error;
  }
}

export async function runBaselines(runs: number): Promise<BaselineResults> {
  const errors: string[] = [];

  // 1. docker run -d (CLI), then docker rm -f (CLI)
  const cliRun: number[] = [];
  const cliRemove: number[] = [];
  log(`baseline: ${runs} x docker run -d --network host ${BENCH.baseImage} sleep 300`);
  for (let i = 0; i < runs; i++) {
    const name = randomName('bench-baseline-sleep');
    const t0 = now();
    try {
      await dockerCli(['run', '-d', '--name', name, '--label', 'berth.bench=baseline', '--network', 'host', BENCH.baseImage, 'sleep', '300']);
      cliRun.push(now() - t0);
    } catch (error) {
      errors.push((error as Error).message);
    }
    const t1 = now();
    await dockerCli(['rm', '-f', name]).then(
      () => cliRemove.push(now() - t1),
      (error: Error) => errors.push(error.message),
    );
  }

  // 2. create + start through the engine API
  const apiRun: number[] = [];
  log(`baseline: ${runs} x engine API create+start (dockerode)`);
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    try {
      const container = await docker.createContainer({
        name: randomName('bench-baseline-api'),
        Image: BENCH.baseImage,
        Cmd: ['sleep', '300'],
        Labels: { 'berth.bench': 'baseline' },
        HostConfig: { NetworkMode: 'host' },
      });
      await container.start();
      apiRun.push(now() - t0);
      await container.remove({ force: true });
    } catch (error) {
      errors.push((error as Error).message);
    }
  }

  // 3. the terminal image, hardened like Berth runs it; alternately with and without the CPU quota
  const receiver = new CallbackReceiver();
  await receiver.listen();
  const limited: TerminalRun[] = [];
  const unlimited: TerminalRun[] = [];
  log(`baseline: ${runs} x docker run -d ${BENCH.terminalImage} (Berth's hardening flags) -> callback -> page -> echo, alternating with ${runs} without --cpus 1`);
  try {
    for (let i = 0; i < runs * 2; i++) {
      const cpuLimit = i % 2 === 0;
      try {
        const r = await runTerminalOnce(receiver, { cpuLimit, full: cpuLimit });
        (cpuLimit ? limited : unlimited).push(r);
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
  } finally {
    receiver.close();
  }

  const pick = (list: TerminalRun[], key: keyof TerminalRun) => stats(list.map((r) => r[key]).filter((x): x is number => x !== undefined));
  return {
    runs,
    sleepCliRun: stats(cliRun),
    sleepCliRemove: stats(cliRemove),
    sleepApiCreateStart: stats(apiRun),
    terminalCliRun: pick(limited, 'run'),
    terminalRunToCallback: pick(limited, 'callback'),
    terminalRunToHealthz: pick(limited, 'healthz'),
    terminalRunToPage: pick(limited, 'page'),
    terminalRunToEcho: pick(limited, 'echo'),
    terminalRemove: pick(limited, 'remove'),
    terminalNoCpuLimitRunToCallback: pick(unlimited, 'callback'),
    terminalNoCpuLimitRunToEcho: pick(unlimited, 'echo'),
    errors,
  };
}

/** K terminal containers started at once with `docker run` (Berth's flags, CPU quota on), `rounds` times. */
export async function runParallelBaseline(parallel: number, rounds: number): Promise<ParallelBaselineResults> {
  const errors: string[] = [];
  const receiver = new CallbackReceiver();
  await receiver.listen();
  const all: TerminalRun[] = [];
  const walls: number[] = [];
  log(`baseline: ${rounds} rounds of ${parallel} x docker run -d ${BENCH.terminalImage} at once -> callback -> echo`);
  try {
    for (let r = 0; r < rounds; r++) {
      const t = now();
      const results = await Promise.allSettled(Array.from({ length: parallel }, () => runTerminalOnce(receiver, { cpuLimit: true, full: false })));
      const ok: TerminalRun[] = [];
      for (const result of results) {
        if (result.status === 'fulfilled') ok.push(result.value);
        else errors.push((result.reason as Error).message);
      }
      all.push(...ok);
      // First `docker run` to last echo, like Berth's round (removal not included).
      if (ok.length) walls.push(Math.max(...ok.map((x) => x.echoAt)) - t);
      await sleep(500);
    }
  } finally {
    receiver.close();
  }
  return {
    parallel,
    rounds,
    runToCallback: stats(all.map((r) => r.callback)),
    runToEcho: stats(all.map((r) => r.echo)),
    roundWall: stats(walls),
    errors,
  };
}
