import { Inject, Injectable, Logger } from '@nestjs/common';
import { BerthConfig } from '../config/berth-config';
import { VolumesRepository } from '../volumes/volumes.repository';
import { CONTAINER_PLATFORM, ContainerPlatform, ManagedContainer } from '../platform/container-platform';
import { SessionProvisioner, refOf } from '../provisioning/session-provisioner.service';
import { QueueReconciler } from './queue-reconciler';
import { SessionStatus } from '../sessions/session-status';
import { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';

export interface SweepReport {
  expired: number;
  idle: number;
  timedOut: number;
  vanished: number;
  removalsRetried: number;
  orphansRemoved: number;
  volumesRemoved: number;
}

export interface SweepProgress {
  phase: 'expire' | 'idle' | 'start-timeout' | 'check-running' | 'stopping' | 'orphans' | 'volumes' | 'done';
  report: SweepReport;
}

/** How many platform calls the sweep makes at once. */
const PARALLELISM = 8;

/** A session `stopping` longer than this has a removal to retry (its teardown job failed or was lost). */
const STOPPING_RETRY_SECONDS = 30;

/** Idempotency keys answer replays for a day. */
const IDEMPOTENCY_KEY_SECONDS = 24 * 3600;

/**
 * Runs `fn` over `items`, `limit` at a time. One item's failure is logged and
 * does not stop the others: the next sweep retries what is left.
 */
async function forEachLimited<T extends { sessionId?: string; id?: string; name?: string }>(
  items: T[],
  limit: number,
  logger: Logger,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      await fn(item).catch((error: Error) =>
        logger.warn({ msg: 'cleanup step failed; the next sweep retries', sessionId: item.sessionId ?? item.id, item: item.name, error: error.message }),
      );
    }
  });
  await Promise.all(lanes);
}

/**
 * Reconciliation: drives what runs on the platform toward what Postgres says.
 * Runs every CLEANUP_INTERVAL_MINUTES and once when a worker starts. Safe to
 * run concurrently with itself and with provisioning: every change is a
 * conditional update, and removing a container twice is harmless.
 */
@Injectable()
export class CleanupService {
  private readonly logger = new Logger(CleanupService.name);

  constructor(
    private readonly sessions: SessionsRepository,
    @Inject(CONTAINER_PLATFORM) private readonly platform: ContainerPlatform,
    private readonly config: BerthConfig,
    private readonly volumes: VolumesRepository,
    private readonly provisioner: SessionProvisioner,
    private readonly reconciler: QueueReconciler,
  ) {}

  async sweep(onProgress: (progress: SweepProgress) => Promise<void> | void = () => {}): Promise<SweepReport> {
    const report: SweepReport = { expired: 0, idle: 0, timedOut: 0, vanished: 0, removalsRetried: 0, orphansRemoved: 0, volumesRemoved: 0 };

    // The timer jobs end sessions on time; these catch what a lost job missed.
    await onProgress({ phase: 'expire', report });
    const expired = await this.sessions.expireDue();
    report.expired = expired.length;
    await this.tearDown(expired, 'TTL passed');

    await onProgress({ phase: 'idle', report });
    const idle = await this.sessions.stopIdle();
    report.idle = idle.length;
    await this.tearDown(idle, 'idle past its timeout');

    await onProgress({ phase: 'start-timeout', report });
    const stuck = await this.sessions.failStuck(this.config.sessions.startTimeoutSeconds);
    report.timedOut = stuck.length;
    await forEachLimited(stuck, PARALLELISM, this.logger, (session) => this.provisioner.removeContainer(session));

    await onProgress({ phase: 'check-running', report });
    // One listing for the whole install: the sweep costs the same platform calls for 5 sessions or 5,000.
    const managed = await this.platform.listManaged();
    report.vanished = await this.failSessionsWithDeadContainers(managed);

    await onProgress({ phase: 'stopping', report });
    const stopping = await this.sessions.findStoppingSince(STOPPING_RETRY_SECONDS);
    report.removalsRetried = stopping.length;
    await this.tearDown(stopping, 'removal retried');

    await onProgress({ phase: 'orphans', report });
    report.orphansRemoved = await this.removeOrphans(managed);

    await onProgress({ phase: 'volumes', report });
    report.volumesRemoved = await this.removeUnreferencedVolumes();

    await this.sessions.forgetIdempotencyKeys(IDEMPOTENCY_KEY_SECONDS);
    // Postgres is the truth: every job a session needs exists in Redis.
    await this.reconciler.reconcile('sweep');
    await onProgress({ phase: 'done', report });
    if (Object.values(report).some((count) => count > 0)) this.logger.log({ msg: 'cleanup sweep', ...report });
    return report;
  }

  /** Started sessions (and warm pool containers) whose container exited or disappeared are failed and cleaned. */
  private async failSessionsWithDeadContainers(managed: ManagedContainer[]): Promise<number> {
    const running = new Set(managed.filter((container) => container.running).map((container) => container.sessionId));
    // Only the sessions the listing does not show running are polled, for the reason they stopped.
    const suspects = (await this.sessions.findRunning()).filter((session) => !running.has(session.id));
    let count = 0;
    await forEachLimited(suspects, PARALLELISM, this.logger, async (session) => {
      if (await this.failIfDead(session)) count++;
    });
    return count;
  }

  /**
   * A container of this install exited (the platform's event stream): if its
   * session should be running, it is failed and cleaned at once instead of at
   * the next sweep. Exits of containers Berth removed itself find the session
   * already ending and change nothing.
   */
  async checkExited(sessionId: string): Promise<void> {
    if (!isUuid(sessionId)) return;
    const session = await this.sessions.findById(sessionId);
    if (!session || (session.status !== SessionStatus.Started && session.status !== SessionStatus.Warm)) return;
    await this.failIfDead(session);
  }

  private async failIfDead(session: Session): Promise<boolean> {
    const status = await this.platform.poll(refOf(session));
    if (status.state === 'running') return false;
    const reason = status.state === 'exited' ? status.reason : 'container disappeared';
    const failed = await this.sessions.transition(session.id, SessionStatus.Failed, { errorMessage: reason });
    if (!failed) return false;
    this.logger.warn({ msg: 'session container is no longer running', sessionId: session.id, error: reason });
    await this.provisioner.removeContainer(failed);
    return true;
  }

  /** Containers this install created whose session is not live are removed. */
  private async removeOrphans(managed: ManagedContainer[]): Promise<number> {
    const holding = await this.sessions.holdingIds(managed.map((container) => container.sessionId).filter(isUuid));
    const orphans = managed.filter((container) => !holding.has(container.sessionId));
    await forEachLimited(orphans, PARALLELISM, this.logger, async (orphan) => {
      this.logger.log({ msg: 'removing orphaned container', sessionId: orphan.sessionId, container: orphan.containerName });
      await this.platform.stop({ sessionId: orphan.sessionId, kind: orphan.kind, state: { containerName: orphan.containerName } });
      await this.sessions.releaseHostPort(orphan.sessionId);
    });
    return orphans.length;
  }

  /**
   * Removes one persistent volume (a deleted profile's). Still mounted by a
   * container that is shutting down: thrown, so the job retries with backoff.
   */
  async removeVolume(volume: string): Promise<void> {
    if ((await this.volumes.referencedVolumes()).has(volume)) {
      this.logger.log({ msg: 'volume in use again; kept', volume });
      return;
    }
    const outcome = await this.platform.removeVolume(volume);
    if (outcome === 'in-use') throw new Error(`volume ${volume} is still mounted; will retry`);
    this.logger.log({ msg: 'volume removed', volume, outcome });
  }

  /** Volumes this install created that no profile or live session refers to (a deletion whose job was lost). */
  private async removeUnreferencedVolumes(): Promise<number> {
    const [managed, referenced] = await Promise.all([this.platform.listManagedVolumes(), this.volumes.referencedVolumes()]);
    let removed = 0;
    await forEachLimited(
      managed.filter((volume) => !referenced.has(volume.name)),
      PARALLELISM,
      this.logger,
      async (volume) => {
        if ((await this.platform.removeVolume(volume.name)) === 'removed') {
          removed++;
          this.logger.log({ msg: 'removed unreferenced volume', volume: volume.name, purpose: volume.purpose });
        }
      },
    );
    return removed;
  }

  private async tearDown(sessions: Session[], why: string): Promise<void> {
    await forEachLimited(sessions, PARALLELISM, this.logger, async (session) => {
      this.logger.log({ msg: `session ending: ${why}`, sessionId: session.id });
      await this.provisioner.teardown(session.id);
    });
  }
}

function isUuid(value: string | undefined): value is string {
  return !!value && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}
