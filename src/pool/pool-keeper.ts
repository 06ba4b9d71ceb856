import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { BerthConfig } from '../config/berth-config';
import { KindProfiles } from '../kinds/kind-profiles';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { SessionChangeFeed } from '../sessions/session-change-feed';
import { SessionStatus } from '../sessions/session-status';
import { Session } from '../sessions/session.entity';
import { poolTargets } from './pool-targets';
import { PoolTarget, WarmPoolRepository } from './warm-pool.repository';

/** Retirement by age and missed notifications are caught this often. */
const CHECK_INTERVAL_MS = 5000;

/** Claims and ends arrive in bursts: one refill after each burst settles. */
const DEBOUNCE_MS = 50;

/** A claim makes a pool row `starting`; an ending session may free capacity the pool was waiting for. */
const WAKING = new Set<string>([SessionStatus.Starting, SessionStatus.Stopped, SessionStatus.Expired, SessionStatus.Failed]);

/**
 * The warm pool's policy, in the worker: keeps each variant at its
 * configured size (POOL_TERMINALS, POOL_BROWSERS_HEADLESS,
 * POOL_BROWSERS_HEADFUL), replaces containers past POOL_MAX_AGE_MINUTES or
 * of a changed image, shrinks a pool whose size went down, and gives slots
 * back when launches wait for capacity. Refills as soon as a claim commits
 * (the change feed), and every few seconds. Starting a container is a
 * `warm-container` job (SessionProvisioner.warm), so a crashed worker's
 * warm-up resumes elsewhere like any provisioning.
 */
@Injectable()
export class PoolKeeper implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(PoolKeeper.name);
  private readonly targets: PoolTarget[];
  private timer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(
    private readonly pool: WarmPoolRepository,
    private readonly jobs: SessionJobs,
    private readonly feed: SessionChangeFeed,
    private readonly config: BerthConfig,
    kinds: KindProfiles,
  ) {
    this.targets = poolTargets(kinds, config);
  }

  onApplicationBootstrap(): void {
    // Even with every size at 0 the check runs: it retires what an earlier configuration left.
    this.timer = setInterval(() => this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
    if (this.enabled) {
      this.unsubscribe = this.feed.subscribe({
        onSessionChanged: (change) => {
          if (WAKING.has(change.status)) this.checkSoon();
        },
        onResync: () => this.checkSoon(),
      });
    }
    this.check();
  }

  /** Before the queues and the database close: no new pass starts, and the one running is let finish. */
  async beforeApplicationShutdown(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    this.unsubscribe?.();
    await this.running;
  }

  get enabled(): boolean {
    return this.targets.some((target) => target.size > 0);
  }

  private checkSoon(): void {
    if (this.debounce || this.closed) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.check();
    }, DEBOUNCE_MS);
  }

  /** Runs one pass, or asks the one in progress to run again when it ends. */
  check(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .then(() => undefined)
      .catch((error: Error) => this.logger.warn({ msg: 'warm pool check failed; retried shortly', error: error.message }))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.check();
        }
      });
  }

  /** One pass: retire what should go, then start what is missing. Exposed for tests and the sweep. */
  async pass(): Promise<{ retired: number; added: number }> {
    const platform = this.config.platform.kind;
    const capacity = this.config.sessions.maxRunning;
    const retired = [...(await this.pool.retire(this.targets, platform)), ...(await this.pool.yieldToWaiting(platform, capacity))];
    await this.tearDown(retired);
    const added = await this.pool.refill(this.targets, platform, capacity, this.config.pool.maxAgeSeconds);
    for (const id of added) await this.jobs.warm(id);
    if (retired.length || added.length) {
      this.logger.log({ msg: 'warm pool adjusted', retired: retired.length, added: added.length, sessionIds: added });
    }
    return { retired: retired.length, added: added.length };
  }

  private async tearDown(retired: Session[]): Promise<void> {
    for (const row of retired) {
      this.logger.log({ msg: 'pool container retired', sessionId: row.id, pool: row.poolVariant });
      // Already `stopping`: if this enqueue fails, the sweep retries the removal.
      await this.jobs.teardown(row.id).catch(() => undefined);
    }
  }
}
