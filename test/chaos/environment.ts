import { BerthCluster, CHAOS_INSTANCE, ClusterOptions, TERMINAL_IMAGE } from './berth-cluster';
import { Chaos } from './chaos-actions';
import { ChaosDb, CheckOptions, Figures, computeFigures, settle } from './checker';
import { ContainerObserver } from './container-observer';
import { ApiClient, LoadDriver } from './load-driver';
import { PrivateServices, reapStaleRuns } from './services';

export interface EnvironmentOptions extends ClusterOptions {
  /** Where logs go (default: inside the run directory, removed at the end). */
  logs?: string;
  log?: (line: string) => void;
}

/**
 * Everything one chaos run needs, started together and torn down together:
 * the private services, Berth (2 APIs, 2 workers), a Postgres reader, the
 * container observer, an API client, and the fault injector.
 */
export class ChaosEnvironment {
  readonly services: PrivateServices;
  readonly cluster: BerthCluster;
  db!: ChaosDb;
  observer!: ContainerObserver;
  client!: ApiClient;
  chaos!: Chaos;
  private readonly onExit = () => this.killNow();

  private constructor(private readonly options: EnvironmentOptions) {
    this.services = new PrivateServices(options.logs);
    this.cluster = new BerthCluster(this.services, options);
  }

  static async start(options: EnvironmentOptions): Promise<ChaosEnvironment> {
    const reaped = await reapStaleRuns();
    if (reaped.length) options.log?.(`reaped ${reaped.length} stale chaos run(s): ${reaped.join(', ')}`);
    const env = new ChaosEnvironment(options);
    process.once('exit', env.onExit);
    try {
      await env.services.start([TERMINAL_IMAGE]);
      await Promise.all([env.cluster.start(), env.services.imagesLoaded]);
      env.db = new ChaosDb(env.services.postgres.url());
      env.observer = new ContainerObserver(env.services.docker.docker, CHAOS_INSTANCE);
      env.observer.start();
      env.client = new ApiClient(() => env.cluster.urls, env.cluster.adminKey);
      env.chaos = new Chaos(env.services, env.cluster, env.db, options.log);
    } catch (error) {
      await env.close().catch(() => undefined);
      throw error;
    }
    return env;
  }

  get logs(): string {
    return this.services.run.logs;
  }

  driver(options?: ConstructorParameters<typeof LoadDriver>[1]): LoadDriver {
    return new LoadDriver(this.client, options);
  }

  /** Waits for everything created since `since` to settle, then computes the figures. */
  async check(since: number, options: CheckOptions & { settleTimeoutMs: number }, driver?: LoadDriver): Promise<Figures> {
    const settledAfterMs = await settle(this.db, this.observer, since, options.settleTimeoutMs);
    return computeFigures({
      db: this.db,
      observer: this.observer,
      client: this.client,
      cluster: this.cluster,
      driver,
      since,
      windows: this.chaos.windows,
      settledAfterMs,
      options,
    });
  }

  async close(): Promise<void> {
    process.removeListener('exit', this.onExit);
    await this.observer?.stop().catch(() => undefined);
    await this.cluster.stop().catch(() => undefined);
    await this.db?.close().catch(() => undefined);
    await this.services.stop();
  }

  /** From a synchronous exit handler: kill what can be killed; the next run reaps the rest. */
  killNow(): void {
    this.cluster.killNow();
    this.services.killNow();
  }
}
