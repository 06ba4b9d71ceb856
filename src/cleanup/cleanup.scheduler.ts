import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONTAINER_PLATFORM, ContainerPlatform } from '../platform/container-platform';
import { CleanupService } from './cleanup.service';

/** How often a worker checks that the container platform answers. */
const PLATFORM_CHECK_MS = 2000;

/**
 * Reconciles once at worker start, so sessions and containers left by a
 * crash or an outage are settled without waiting a whole interval. (The
 * repeatable schedule itself is kept by QueueReconciler.)
 *
 * Between sweeps, a session whose container dies is noticed at once: the
 * platform's exit stream (Docker's event stream, a Kubernetes pod watch)
 * names the session, which is checked and failed; a break in that stream (the
 * engine restarting, which stops every container: no live-restore) is
 * followed by a full reconciliation when it reconnects. The platform's
 * reachability is watched too: when it answers again after it stopped, a
 * reconciliation runs. Without these, sessions on dead containers
 * stayed `started` until the next scheduled sweep (minutes). The sweep stays
 * the safety net.
 */
@Injectable()
export class CleanupScheduler implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(CleanupScheduler.name);
  private timer: NodeJS.Timeout | null = null;
  private stopWatching: (() => void) | null = null;
  private platformDown = false;
  private checking = false;

  constructor(
    private readonly cleanup: CleanupService,
    @Inject(CONTAINER_PLATFORM) private readonly platform: ContainerPlatform,
  ) {}

  onApplicationBootstrap(): void {
    this.sweep('start-up reconciliation');
    this.timer = setInterval(() => void this.checkPlatform(), PLATFORM_CHECK_MS);
    this.timer.unref();
    this.stopWatching =
      this.platform.watchExits?.({
        onExit: (sessionId) =>
          void this.cleanup
            .checkExited(sessionId)
            .catch((error: Error) => this.logger.warn({ msg: 'checking an exited container failed; the sweep retries', sessionId, error: error.message })),
        onResync: () => this.sweep('reconciliation after the platform event stream came back'),
      }) ?? null;
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopWatching?.();
    this.stopWatching = null;
  }

  private async checkPlatform(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await this.platform.ping();
      if (this.platformDown) {
        this.platformDown = false;
        this.logger.log({ msg: 'container platform answers again; reconciling sessions with it' });
        this.sweep('reconciliation after the container platform came back');
      }
    } catch (error) {
      if (!this.platformDown) this.logger.warn({ msg: 'container platform does not answer', error: (error as Error).message });
      this.platformDown = true;
    } finally {
      this.checking = false;
    }
  }

  private sweep(what: string): void {
    this.cleanup
      .sweep()
      .then((report) => this.logger.log({ msg: `${what} done`, ...report }))
      .catch((error: Error) => this.logger.error({ msg: `${what} failed`, error: error.message }));
  }
}
