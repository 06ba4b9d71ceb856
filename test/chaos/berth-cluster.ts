import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { AddressInfo, Server, Socket, createConnection, createServer } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { PrivateServices } from './services';
import { Child, freePort, until } from './util';

/** The built entry points (dist/src); BERTH_CHAOS_DIST points at another build (e.g. of a clean checkout). */
const DIST = process.env.BERTH_CHAOS_DIST ?? join(__dirname, '..', '..', 'dist', 'src');
const NODE_MODULES = join(__dirname, '..', '..', 'node_modules');

/**
 * Copies the build into the run directory (with a link to node_modules), so
 * that every restart during the run starts the same code: `nest build`
 * deletes and rewrites dist/, and someone may run it in the same checkout
 * meanwhile. Returns the copy's dist/src.
 */
export function snapshotBuild(runDir: string): string {
  const root = dirname(DIST);
  if (!existsSync(join(DIST, 'main.js')) || !existsSync(join(DIST, 'worker.js'))) {
    throw new Error(`${DIST}/main.js or worker.js is missing: run npx nest build first`);
  }
  cpSync(root, join(runDir, 'dist'), { recursive: true });
  symlinkSync(NODE_MODULES, join(runDir, 'node_modules'));
  return join(runDir, 'dist', basename(DIST));
}

/** Where session containers live on the host network: away from the normal suite's 20000-29999. */
export const CHAOS_PORT_RANGE = '30000-30999';
const PORT_BLOCKS = 5;
const PORT_BLOCK_SIZE = 200;

/**
 * One block of CHAOS_PORT_RANGE for this run. Each run has its own Postgres,
 * so two runs at once (two people, or npm test beside npm run chaos) would
 * hand out the same host ports: each claims a block with a lock file
 * (/tmp/berth-chaos-ports-N.lock holding its pid; a dead owner's is taken over).
 */
export function claimPortBlock(): { range: string; release: () => void } {
  for (const n of [...Array(PORT_BLOCKS).keys()].sort(() => Math.random() - 0.5)) {
    const lock = `/tmp/berth-chaos-ports-${n}.lock`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(lock, String(process.pid), { flag: 'wx' });
        const low = 30000 + n * PORT_BLOCK_SIZE;
        return { range: `${low}-${low + PORT_BLOCK_SIZE - 1}`, release: () => rmSync(lock, { force: true }) };
      } catch {
        const owner = Number(readFileSync(lock, 'utf8'));
        if (Number.isFinite(owner) && owner > 0 && alive(owner)) break;
        rmSync(lock, { force: true }); // its run died: take it over
      }
    }
  }
  throw new Error(`all ${PORT_BLOCKS} session port blocks of ${CHAOS_PORT_RANGE} are taken by other chaos runs`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
export const CHAOS_INSTANCE = 'chaos';
export const CHAOS_QUEUE_PREFIX = 'chaos';
export const TERMINAL_IMAGE = process.env.TERMINAL_IMAGE ?? 'berth/terminal:latest';

export interface ProcessExit {
  at: number;
  process: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** It had started (printed its ready line) and nobody asked it to stop: a crash. */
  afterReady: boolean;
}

/**
 * One built entry point (dist/src/main.js or worker.js) as a real process,
 * supervised the way systemd or Kubernetes would: an exit nobody asked for
 * is recorded and the process started again a second later.
 */
export class BerthProcess {
  readonly child: Child;
  private readonly logFile: string;
  private logOffset = 0;
  private isReady = false;
  supervise = true;
  readonly exits: ProcessExit[] = [];

  constructor(
    readonly name: string,
    readonly role: 'api' | 'worker',
    env: Record<string, string>,
    logs: string,
    dist: string,
    readonly port?: number,
  ) {
    this.logFile = join(logs, `${name}.log`);
    const entry = join(dist, role === 'api' ? 'main.js' : 'worker.js');
    this.child = new Child(name, process.execPath, [entry], this.logFile, { env: { PATH: process.env.PATH, ...env } });
    this.child.onUnexpectedExit = (code, signal) => {
      this.exits.push({ at: Date.now(), process: name, code, signal, afterReady: this.isReady });
      this.isReady = false;
      if (this.supervise) setTimeout(() => this.supervise && !this.child.running && this.start(), 1000).unref();
    };
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child.running;
  }

  start(): void {
    this.logOffset = existsSync(this.logFile) ? statSync(this.logFile).size : 0;
    this.isReady = false;
    this.child.start();
  }

  /** Waits for the line the entry point prints once it serves (API) or takes jobs (worker). */
  async ready(timeoutMs = 60_000): Promise<void> {
    const marker = this.role === 'api' ? 'Berth API listening' : 'Berth worker running';
    await until(async () => this.output().includes(marker), timeoutMs, `${this.name} to start (log: ${this.logFile})`, 50);
    this.isReady = true;
  }

  /** What it printed since its last start. */
  output(): string {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile).subarray(this.logOffset).toString('utf8');
  }

  /** Every line it printed in this run. */
  fullLog(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.isReady = false;
    await this.child.stop(signal, 30_000);
  }

  async restart(): Promise<void> {
    if (!this.child.running) this.start();
    await this.ready();
  }
}

/**
 * What a load balancer in front of the API replicas does, at the TCP level:
 * each connection goes to the next replica, and to the other one when that
 * one refuses. Session containers reach the callback API through it, so a
 * killed API process does not strand their ready callback.
 */
export class TcpBalancer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private next = 0;
  port = 0;

  constructor(private readonly backends: () => number[]) {}

  async listen(): Promise<number> {
    this.server = createServer((client) => this.route(client, 0));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  private route(client: Socket, attempt: number): void {
    const ports = this.backends();
    if (attempt >= ports.length * 2) {
      client.destroy();
      return;
    }
    const port = ports[this.next++ % ports.length];
    const upstream = createConnection(port, '127.0.0.1');
    let connected = false;
    this.track(client);
    this.track(upstream);
    client.pause();
    upstream.once('connect', () => {
      connected = true;
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.on('error', () => {
      upstream.destroy();
      if (!connected && !client.destroyed) this.route(client, attempt + 1);
      else client.destroy();
    });
    client.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => connected && client.destroy());
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

export interface ClusterOptions {
  /** CLEANUP_INTERVAL_MINUTES of every process. */
  cleanupIntervalMinutes: number;
  startTimeoutSeconds: number;
  apis?: number;
  workers?: number;
  env?: Record<string, string>;
}

/**
 * Berth as deployed for the chaos runs: two API processes and two workers
 * (built dist/ entry points) against the private Postgres, Redis and Docker
 * engine, one BERTH_INSTANCE and queue prefix, and a TCP balancer in front
 * of the APIs for the session containers' callbacks.
 */
export class BerthCluster {
  readonly adminKey = `chaos-admin-${randomBytes(20).toString('hex')}`;
  readonly secretKey = randomBytes(32).toString('hex');
  readonly apis: BerthProcess[] = [];
  readonly workers: BerthProcess[] = [];
  readonly balancer: TcpBalancer;
  private readonly ports = claimPortBlock();

  constructor(
    private readonly services: PrivateServices,
    private readonly options: ClusterOptions,
  ) {
    this.balancer = new TcpBalancer(() => this.apis.map((api) => api.port!));
  }

  get all(): BerthProcess[] {
    return [...this.apis, ...this.workers];
  }

  /** The session ports this run hands out (its block of CHAOS_PORT_RANGE). */
  get portRange(): string {
    return this.ports.range;
  }

  get urls(): string[] {
    return this.apis.map((api) => api.url);
  }

  private env(port?: number): Record<string, string> {
    const { postgres, redis, docker } = this.services;
    return {
      DATABASE_URL: postgres.url(),
      REDIS_URL: redis.url,
      QUEUE_PREFIX: CHAOS_QUEUE_PREFIX,
      BERTH_INSTANCE: CHAOS_INSTANCE,
      BERTH_SECRET_KEY: this.secretKey,
      BERTH_ADMIN_KEY: this.adminKey,
      // Only what is set here: never a developer's .env in the checkout.
      BERTH_ENV_FILE: '/dev/null',
      DOCKER_SOCKET_PATH: docker.socket,
      SESSION_PORT_RANGE: this.ports.range,
      TERMINAL_IMAGE,
      CALLBACK_URL: `http://127.0.0.1:${this.balancer.port}/api/v1/callbacks`,
      CLEANUP_INTERVAL_MINUTES: String(this.options.cleanupIntervalMinutes),
      START_TIMEOUT_SECONDS: String(this.options.startTimeoutSeconds),
      // The load driver is one API key; the limiter is not what is under test.
      RATE_LIMIT_PER_MINUTE: '1000000',
      SHUTDOWN_TIMEOUT_SECONDS: '10',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'log',
      ...(port ? { HOST: '127.0.0.1', PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` } : {}),
      ...this.options.env,
    };
  }

  async start(): Promise<void> {
    await this.balancer.listen();
    const logs = this.services.run.logs;
    const dist = snapshotBuild(this.services.run.path);
    for (let i = 0; i < (this.options.apis ?? 2); i++) {
      const port = await freePort();
      this.apis.push(new BerthProcess(`api${i + 1}`, 'api', this.env(port), logs, dist, port));
    }
    for (let i = 0; i < (this.options.workers ?? 2); i++) this.workers.push(new BerthProcess(`worker${i + 1}`, 'worker', this.env(), logs, dist));
    // The first one applies the migrations (the others would wait on the advisory lock anyway).
    this.apis[0].start();
    await this.apis[0].ready();
    for (const process of this.all.slice(1)) process.start();
    await Promise.all(this.all.slice(1).map((process) => process.ready()));
  }

  /** Every exit nobody asked for, in order. */
  exits(): ProcessExit[] {
    return this.all.flatMap((process) => process.exits).sort((a, b) => a.at - b.at);
  }

  /** Waits until every process is running and ready (after the supervisor's restarts). */
  async allReady(timeoutMs = 60_000): Promise<void> {
    await Promise.all(
      this.all.map(async (process) => {
        if (!process.running) process.start();
        await process.ready(timeoutMs);
      }),
    );
  }

  async stop(): Promise<void> {
    for (const process of this.all) process.supervise = false;
    await Promise.all(this.all.map((process) => process.kill('SIGTERM').catch(() => undefined)));
    await this.balancer.close();
    this.ports.release();
  }

  killNow(): void {
    for (const process of this.all) {
      process.supervise = false;
      process.child.killNow();
    }
    this.ports.release();
  }
}
