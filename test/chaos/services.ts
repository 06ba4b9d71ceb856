import Docker from 'dockerode';
import Redis from 'ioredis';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { Child, freePort, sleep, until } from './util';

/**
 * Private Postgres, Redis and Docker engine for the chaos runs.
 *
 * Other people run the normal suite on the same machine against the shared
 * services (Postgres :5432, Redis :6379, /var/run/docker.sock). Chaos
 * restarts, flushes and kills its dependencies, so it never touches those:
 * everything here runs from one temporary directory (/tmp/berth-chaos-*),
 * on loopback, with passwords (session containers share the host's
 * network), and is torn down at the end. A run that died without tearing
 * down is reaped by the next one (`reapStaleRuns`).
 *
 * Needs root (the Postgres server runs as the `postgres` user, dockerd as
 * root) and Debian's postgresql, redis-server and docker.io packages, which
 * scripts/ensure-services.sh installs.
 */

const BASE_PREFIX = 'berth-chaos-';

function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((name) => existsSync(join(root, name, 'bin', 'postgres'))) : [];
  if (!versions.length) throw new Error('PostgreSQL server binaries not found in /usr/lib/postgresql (apt-get install postgresql)');
  versions.sort((a, b) => Number(b) - Number(a));
  return join(root, versions[0], 'bin');
}

function idOf(user: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** A run's directory: every private service lives below it. */
export class RunDir {
  readonly path: string;
  readonly logs: string;

  /** @param logs where the services' and processes' logs go (default: `logs/` in the run directory) */
  constructor(logs?: string) {
    this.path = mkdtempSync(`/tmp/${BASE_PREFIX}`);
    chmodSync(this.path, 0o755);
    writeFileSync(join(this.path, 'owner.pid'), String(process.pid));
    this.logs = logs ?? join(this.path, 'logs');
    mkdirSync(this.logs, { recursive: true });
  }

  sub(name: string): string {
    const dir = join(this.path, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  }
}

export class PrivatePostgres {
  readonly password = randomBytes(18).toString('hex');
  port = 0;
  private readonly dir: string;
  private readonly data: string;
  private readonly bin = postgresBin();
  private readonly user = idOf('postgres');
  private server?: Child;

  constructor(private readonly run: RunDir) {
    this.dir = run.sub('pg');
    this.data = join(this.dir, 'data');
  }

  url(database = 'berth'): string {
    return `postgres://berth:${this.password}@127.0.0.1:${this.port}/${database}`;
  }

  async init(): Promise<void> {
    chownSync(this.dir, this.user.uid, this.user.gid);
    chmodSync(this.dir, 0o700);
    const pwfile = join(this.dir, 'superuser.pw');
    writeFileSync(pwfile, this.password, { mode: 0o600 });
    chownSync(pwfile, this.user.uid, this.user.gid);
    execFileSync(join(this.bin, 'initdb'), ['-D', this.data, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--no-sync'], {
      ...this.user,
      cwd: this.dir,
      env: { PATH: process.env.PATH, LANG: 'C.UTF-8' },
      stdio: 'ignore',
    });
    this.port = await freePort();
    this.server = new Child('postgres', join(this.bin, 'postgres'), [
      '-D', this.data,
      '-p', String(this.port),
      '-k', this.dir,
      '-c', 'listen_addresses=127.0.0.1',
      // A restart here is a process restart, not a machine crash: the OS keeps
      // what was written, so skipping fsync loses nothing and is much faster.
      '-c', 'fsync=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=300',
    ], join(this.run.logs, 'postgres.log'), { ...this.user, cwd: this.dir, env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } });
    await this.start();
    const admin = new Client({ host: '127.0.0.1', port: this.port, user: 'postgres', password: this.password, database: 'postgres' });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE berth LOGIN PASSWORD '${this.password}'`);
      await admin.query('CREATE DATABASE berth OWNER berth');
    } finally {
      await admin.end();
    }
  }

  get running(): boolean {
    return !!this.server?.running;
  }

  async start(): Promise<void> {
    this.server!.start();
    await until(async () => {
      const client = new Client({ host: '127.0.0.1', port: this.port, user: 'postgres', password: this.password, database: 'postgres', connectionTimeoutMillis: 1000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } finally {
        await client.end().catch(() => undefined);
      }
    }, 30_000, 'the private Postgres to accept connections', 50);
  }

  /** fast: clients are disconnected and the server shuts down cleanly (SIGINT); immediate: it quits without a checkpoint, like a crash (SIGQUIT). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.server?.stop(mode === 'fast' ? 'SIGINT' : 'SIGQUIT', 30_000);
  }

  async restart(mode: 'fast' | 'immediate', downMs: number): Promise<void> {
    await this.stop(mode);
    await sleep(downMs);
    await this.start();
  }

  killNow(): void {
    this.server?.killNow();
  }
}

export class PrivateRedis {
  readonly password = randomBytes(18).toString('hex');
  port = 0;
  private readonly dir: string;
  private server?: Child;

  constructor(private readonly run: RunDir) {
    this.dir = run.sub('redis');
  }

  get url(): string {
    return `redis://:${this.password}@127.0.0.1:${this.port}`;
  }

  async init(): Promise<void> {
    this.port = await freePort();
    const conf = join(this.dir, 'redis.conf');
    // As scripts/ensure-services.sh runs the real one: no eviction, append-only, fsync every second.
    writeFileSync(
      conf,
      [
        `port ${this.port}`,
        'bind 127.0.0.1',
        `requirepass ${this.password}`,
        `dir ${this.dir}`,
        `pidfile ${join(this.dir, 'redis.pid')}`,
        'appendonly yes',
        'appendfsync everysec',
        'save ""',
        'maxmemory-policy noeviction',
        'daemonize no',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    this.server = new Child('redis', 'redis-server', [conf], join(this.run.logs, 'redis.log'));
    await this.start();
  }

  get running(): boolean {
    return !!this.server?.running;
  }

  async start(): Promise<void> {
    this.server!.start();
    await until(() => this.ping(), 20_000, 'the private Redis to answer', 50);
  }

  async ping(): Promise<boolean> {
    const client = new Redis({ port: this.port, host: '127.0.0.1', password: this.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return (await client.ping()) === 'PONG';
    } finally {
      client.disconnect();
    }
  }

  /** SIGTERM: Redis writes its append-only file and exits; SIGKILL: up to a second of writes is lost. */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    await this.server?.stop(signal, 20_000);
  }

  /** Restarts it with its data (the append-only file) or empty (the files deleted while it is down). */
  async restart(options: { keepData: boolean; signal: 'SIGTERM' | 'SIGKILL'; downMs: number }): Promise<void> {
    await this.stop(options.signal);
    if (!options.keepData) this.wipe();
    await sleep(options.downMs);
    await this.start();
  }

  /** FLUSHALL while it runs: every key gone, connections kept. */
  async flush(): Promise<void> {
    await this.command('FLUSHALL');
  }

  async command(name: string, ...args: (string | number)[]): Promise<unknown> {
    const client = new Redis({ port: this.port, host: '127.0.0.1', password: this.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await client.call(name, ...args);
    } finally {
      client.disconnect();
    }
  }

  private wipe(): void {
    for (const name of readdirSync(this.dir)) {
      if (name === 'redis.conf') continue;
      rmSync(join(this.dir, name), { recursive: true, force: true });
    }
  }

  killNow(): void {
    this.server?.killNow();
  }
}

/**
 * A second Docker engine, beside the machine's own: its own socket,
 * data-root, exec-root (and so its own containerd), pid file and cgroup
 * parent; no bridge, no iptables (host networking only, as everywhere here).
 */
export class PrivateDocker {
  readonly socket: string;
  readonly cgroupParent: string;
  private readonly dataRoot: string;
  private readonly execRoot: string;
  private readonly pidFile: string;
  private engine?: Child;
  readonly docker: Docker;

  constructor(private readonly run: RunDir) {
    this.socket = join(run.path, 'docker.sock');
    this.dataRoot = run.sub('docker-data');
    this.execRoot = run.sub('docker-exec');
    this.pidFile = join(run.path, 'docker.pid');
    this.cgroupParent = `berth-chaos-${process.pid}-${randomBytes(3).toString('hex')}`;
    writeFileSync(join(run.path, 'cgroup-parent'), this.cgroupParent);
    this.docker = new Docker({ socketPath: this.socket, version: 'v1.41' });
  }

  async init(): Promise<void> {
    this.engine = new Child('dockerd', 'dockerd', [
      '--host', `unix://${this.socket}`,
      '--data-root', this.dataRoot,
      '--exec-root', this.execRoot,
      '--pidfile', this.pidFile,
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--cgroup-parent', this.cgroupParent,
    ], join(this.run.logs, 'dockerd.log'));
    await this.start();
  }

  /** Copies images from the machine's engine (scripts/build-images.sh built them): no registry involved. */
  async loadImages(images: string[]): Promise<void> {
    for (const image of images) {
      const child = spawn('bash', ['-o', 'pipefail', '-c', `docker save "$1" | docker -H "unix://$2" load -q`, 'load', image, this.socket], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk) => (stderr += chunk));
      const [code] = (await once(child, 'exit')) as [number | null];
      if (code !== 0) throw new Error(`could not copy ${image} into the private engine: ${stderr}`);
    }
  }

  get running(): boolean {
    return !!this.engine?.running;
  }

  async start(): Promise<void> {
    // A killed dockerd leaves its pid file behind, and a new one refuses to start over it.
    rmSync(this.pidFile, { force: true });
    this.engine!.start();
    await until(async () => (await this.docker.ping()) && true, 60_000, 'the private Docker engine to answer', 100);
  }

  /**
   * SIGTERM: what `systemctl restart docker` does: the engine stops every
   * container (no live-restore) and exits. SIGKILL: the engine dies, the
   * containers keep running under their shims until the next engine start
   * kills them.
   */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    await this.engine?.stop(signal, 60_000);
  }

  async restart(signal: 'SIGTERM' | 'SIGKILL', downMs: number): Promise<void> {
    await this.stop(signal);
    await sleep(downMs);
    await this.start();
  }

  async removeAllContainers(): Promise<void> {
    const containers = await this.docker.listContainers({ all: true });
    await Promise.all(containers.map((container) => this.docker.getContainer(container.Id).remove({ force: true }).catch(() => undefined)));
  }

  /** Every container gone, the engine stopped, its mounts and cgroups released. */
  async teardown(): Promise<void> {
    if (this.running) {
      await this.removeAllContainers().catch(() => undefined);
      await this.stop('SIGTERM');
    }
    killCgroup(this.cgroupParent);
    // Shims whose containerd went first linger, each holding a socket below the run directory.
    killNamingPath(this.run.path);
    unmountBelow(this.run.path);
    removeCgroup(this.cgroupParent);
  }

  killNow(): void {
    this.engine?.killNow();
  }
}

/** Kills every process left in the cgroups of the private engine's containers. */
function killCgroup(parent: string): void {
  for (const pid of cgroupPids(parent)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

function cgroupPids(parent: string): number[] {
  const pids = new Set<number>();
  const root = '/sys/fs/cgroup';
  if (!existsSync(root)) return [];
  for (const controller of readdirSync(root)) {
    for (const base of [join(root, controller, parent), join(root, parent)]) {
      if (!existsSync(base)) continue;
      walk(base, (dir) => {
        const procs = join(dir, 'cgroup.procs');
        if (!existsSync(procs)) return;
        for (const line of readFileSync(procs, 'utf8').split('\n')) if (line.trim()) pids.add(Number(line));
      });
    }
  }
  return [...pids];
}

function removeCgroup(parent: string): void {
  const root = '/sys/fs/cgroup';
  if (!existsSync(root)) return;
  for (const controller of readdirSync(root)) {
    const base = join(root, controller, parent);
    if (!existsSync(base)) continue;
    const dirs: string[] = [];
    walk(base, (dir) => dirs.push(dir));
    for (const dir of dirs.reverse()) spawnSync('rmdir', [dir]);
  }
}

function walk(dir: string, visit: (dir: string) => void): void {
  visit(dir);
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    const path = join(dir, name);
    try {
      if (statSync(path).isDirectory()) walk(path, visit);
    } catch {
      // vanished
    }
  }
}

/** dockerd mounts its data-root and a network namespace file; they outlive it. */
function unmountBelow(path: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((mount) => mount && (mount === path || mount.startsWith(`${path}/`)))
    .sort((a, b) => b.length - a.length);
  for (const mount of mounts) {
    if (spawnSync('umount', [mount]).status !== 0) spawnSync('umount', ['-l', mount]);
  }
}

/** SIGKILL to every process whose command line names `path` (never this one). */
function killNamingPath(path: string): void {
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number)) {
    if (pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${path}/`)) process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Cleans up after chaos runs that died without tearing down (their owner
 * process is gone): their engine, containers, servers, mounts and files.
 */
export async function reapStaleRuns(): Promise<string[]> {
  const reaped: string[] = [];
  for (const name of readdirSync('/tmp').filter((entry) => entry.startsWith(BASE_PREFIX))) {
    const base = join('/tmp', name);
    const ownerFile = join(base, 'owner.pid');
    const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, 'utf8')) : NaN;
    if (Number.isFinite(owner) && alive(owner)) continue;
    if (!Number.isFinite(owner) && Date.now() - statSync(base).mtimeMs < 3600_000) continue;
    const pidOf = (file: string) => (existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : NaN);
    const engine = pidOf(join(base, 'docker.pid'));
    if (Number.isFinite(engine) && alive(engine)) {
      process.kill(engine, 'SIGTERM');
      for (let i = 0; i < 150 && alive(engine); i++) await sleep(100);
      if (alive(engine)) process.kill(engine, 'SIGKILL');
    }
    const parentFile = join(base, 'cgroup-parent');
    const parent = existsSync(parentFile) ? readFileSync(parentFile, 'utf8').trim() : '';
    if (parent) killCgroup(parent);
    // Shims, containerd, Postgres: their command lines name the run directory.
    killNamingPath(base);
    const redis = pidOf(join(base, 'redis', 'redis.pid'));
    if (Number.isFinite(redis) && alive(redis)) process.kill(redis, 'SIGKILL');
    await sleep(300);
    unmountBelow(base);
    if (parent) removeCgroup(parent);
    rmSync(base, { recursive: true, force: true });
    reaped.push(base);
  }
  return reaped;
}

/** The three private services of one run. */
export class PrivateServices {
  readonly run: RunDir;
  readonly postgres: PrivatePostgres;
  readonly redis: PrivateRedis;
  readonly docker: PrivateDocker;

  constructor(logs?: string) {
    this.run = new RunDir(logs);
    this.postgres = new PrivatePostgres(this.run);
    this.redis = new PrivateRedis(this.run);
    this.docker = new PrivateDocker(this.run);
  }

  /** Starts the three; the images are copied into the engine in the background (`imagesLoaded`). */
  async start(images: string[]): Promise<void> {
    await Promise.all([this.postgres.init(), this.redis.init(), this.docker.init()]);
    this.imagesLoaded = this.docker.loadImages(images);
    this.imagesLoaded.catch(() => undefined);
  }

  imagesLoaded: Promise<void> = Promise.resolve();

  /** Stops everything and removes the run directory (logs kept elsewhere stay). */
  async stop(): Promise<void> {
    await this.docker.teardown().catch(() => undefined);
    await Promise.all([this.postgres.stop('fast').catch(() => undefined), this.redis.stop('SIGTERM').catch(() => undefined)]);
    rmSync(this.run.path, { recursive: true, force: true });
  }

  killNow(): void {
    this.postgres.killNow();
    this.redis.killNow();
    this.docker.killNow();
  }
}
