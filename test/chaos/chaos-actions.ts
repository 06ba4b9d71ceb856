import { BerthCluster, BerthProcess } from './berth-cluster';
import { ChaosDb, Window } from './checker';
import { PrivateServices } from './services';
import { clock, sleep } from './util';

export interface TimelineEntry {
  start: number;
  end: number;
  action: string;
  detail: string;
}

/**
 * The faults a run injects, each recorded on a timeline (what, when, how
 * long, what was in flight) and, for outages, as a window the checker
 * takes into account.
 */
export class Chaos {
  readonly timeline: TimelineEntry[] = [];
  readonly windows: Window[] = [];

  constructor(
    private readonly services: PrivateServices,
    private readonly cluster: BerthCluster,
    private readonly db: ChaosDb,
    private readonly log: (line: string) => void = () => {},
  ) {}

  private async step(action: string, kind: Window['kind'] | null, run: () => Promise<string>): Promise<TimelineEntry> {
    const start = Date.now();
    this.log(`${clock(start)} ${action} ...`);
    const detail = await run();
    const end = Date.now();
    const entry = { start, end, action, detail };
    this.timeline.push(entry);
    if (kind) this.windows.push({ kind, action, start, end });
    this.log(`${clock(end)} ${action}: ${detail} (${((end - start) / 1000).toFixed(1)} s)`);
    return entry;
  }

  /** Sessions being provisioned right now (pending or starting), from Postgres. */
  async inFlight(): Promise<number> {
    const [{ count }] = await this.db.query<{ count: number }>(`SELECT count(*)::int AS count FROM sessions WHERE status IN ('pending', 'starting')`, [], 5000);
    return count;
  }

  /** Waits (up to `timeoutMs`) for a moment when some session is being provisioned; returns how many were. */
  async waitForProvisioning(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const count = await this.inFlight().catch(() => 0);
      if (count > 0 || Date.now() > deadline) return count;
      await sleep(20);
    }
  }

  /** kill -9 (or another signal) of one process, mid-provision if `midProvision`; started again after `downMs`. */
  async kill(process: BerthProcess, options: { signal?: NodeJS.Signals; downMs: number; midProvision?: boolean }): Promise<TimelineEntry> {
    const signal = options.signal ?? 'SIGKILL';
    return this.step(`${signal} ${process.name}`, process.role, async () => {
      const inFlight = options.midProvision ? await this.waitForProvisioning() : await this.inFlight().catch(() => -1);
      process.supervise = false;
      await process.kill(signal);
      await sleep(options.downMs);
      process.supervise = true;
      await process.restart();
      return `${inFlight} session(s) pending or starting when it died; down ${(options.downMs / 1000).toFixed(1)} s, restarted`;
    });
  }

  /** Several processes killed at the same moment (e.g. one API and one worker), restarted after `downMs`. */
  async killTogether(processes: BerthProcess[], options: { downMs: number; midProvision?: boolean }): Promise<TimelineEntry> {
    return this.step(`SIGKILL ${processes.map((p) => p.name).join(' + ')}`, processes[0].role, async () => {
      const inFlight = options.midProvision ? await this.waitForProvisioning() : -1;
      for (const process of processes) process.supervise = false;
      await Promise.all(processes.map((process) => process.kill('SIGKILL')));
      await sleep(options.downMs);
      for (const process of processes) process.supervise = true;
      await Promise.all(processes.map((process) => process.restart()));
      return `${inFlight} session(s) pending or starting when they died; restarted after ${(options.downMs / 1000).toFixed(1)} s`;
    });
  }

  async restartRedis(options: { keepData: boolean; signal: 'SIGTERM' | 'SIGKILL'; downMs: number }): Promise<TimelineEntry> {
    const what = `Redis restart ${options.keepData ? 'with its data' : 'EMPTY (data deleted)'} (${options.signal})`;
    return this.step(what, 'redis', async () => {
      const keys = await this.services.redis.command('DBSIZE').catch(() => '?');
      await this.services.redis.restart(options);
      return `${keys} keys before; down ${(options.downMs / 1000).toFixed(1)} s`;
    });
  }

  async flushRedis(): Promise<TimelineEntry> {
    return this.step('Redis FLUSHALL', 'redis', async () => {
      const keys = await this.services.redis.command('DBSIZE');
      await this.services.redis.flush();
      return `${keys} keys deleted`;
    });
  }

  async restartPostgres(options: { mode: 'fast' | 'immediate'; downMs: number }): Promise<TimelineEntry> {
    return this.step(`Postgres restart (${options.mode} shutdown)`, 'postgres', async () => {
      const inFlight = await this.inFlight().catch(() => -1);
      await this.services.postgres.restart(options.mode, options.downMs);
      return `${inFlight} session(s) pending or starting; down ${(options.downMs / 1000).toFixed(1)} s plus start-up`;
    });
  }

  async restartDocker(options: { signal: 'SIGTERM' | 'SIGKILL'; downMs: number }): Promise<TimelineEntry> {
    return this.step(`Docker engine restart (${options.signal})`, 'docker', async () => {
      const running = (await this.services.docker.docker.listContainers().catch(() => [])).length;
      await this.services.docker.restart(options.signal, options.downMs);
      return `${running} container(s) running before; engine back`;
    });
  }

  /** Every outage window so far that overlaps [start, end]. */
  overlapping(start: number, end: number): Window[] {
    return this.windows.filter((w) => w.start <= end && w.end >= start);
  }
}
