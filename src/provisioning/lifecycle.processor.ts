import { Processor, WorkerHost } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { DelayedError, Job } from 'bullmq';
import { BerthConfig } from '../config/berth-config';
import { CleanupService } from '../cleanup/cleanup.service';
import { isDependencyUnavailable } from '../common/dependency-errors';
import { PlatformError } from '../platform/container-platform';
import { JobName, JobPayloads, QueueName, WORKER_LOCKS } from './jobs';
import { SessionProvisioner, TimerOutcome } from './session-provisioner.service';
import { logWorkerEvents } from './worker-events';

type LifecycleJob =
  | Job<JobPayloads[JobName.TeardownSession], unknown, JobName.TeardownSession>
  | Job<JobPayloads[JobName.ExpireSession], unknown, JobName.ExpireSession>
  | Job<JobPayloads[JobName.IdleCheck], unknown, JobName.IdleCheck>
  | Job<JobPayloads[JobName.DeadlineWarning], unknown, JobName.DeadlineWarning>
  | Job<JobPayloads[JobName.CleanupSweep], unknown, JobName.CleanupSweep>
  | Job<JobPayloads[JobName.RemoveVolume], unknown, JobName.RemoveVolume>;

/** While Postgres is unreachable a job is tried again this often, without spending an attempt. */
const DEPENDENCY_RETRY_MS = 1000;

/**
 * Teardown, the session timers (TTL, idle, expiring-soon), volume removal and
 * the periodic cleanup sweep: short jobs that must not wait behind provisioning.
 */
@Processor(QueueName.Lifecycle, WORKER_LOCKS)
export class LifecycleProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(LifecycleProcessor.name);

  constructor(
    private readonly provisioner: SessionProvisioner,
    private readonly cleanup: CleanupService,
    private readonly config: BerthConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.provisioning.concurrency;
    logWorkerEvents(this.worker, this.logger);
  }

  /** Finish active jobs while the database is still open (see ProvisionProcessor). */
  async beforeApplicationShutdown(): Promise<void> {
    await this.worker.close();
  }

  async process(job: LifecycleJob, token?: string): Promise<unknown> {
    try {
      return await this.run(job, token);
    } catch (error) {
      // Postgres (or Redis) unreachable is nobody's fault but the outage's: try
      // again shortly, as often as it takes, without spending an attempt. Spent
      // attempts left a TTL job failed after ~15 s of outage, and a failed job
      // is never rebuilt from Postgres: the session outlived its deadline until
      // the next sweep. (The repeatable sweep just runs again on schedule.)
      if (token && job.name !== JobName.CleanupSweep && isDependencyUnavailable(error) && !(error instanceof PlatformError)) {
        await job.moveToDelayed(Date.now() + DEPENDENCY_RETRY_MS, token);
        throw new DelayedError();
      }
      throw error;
    }
  }

  private async run(job: LifecycleJob, token: string | undefined): Promise<unknown> {
    switch (job.name) {
      case JobName.TeardownSession:
        return this.provisioner.teardown(job.data.sessionId);
      case JobName.ExpireSession:
        return this.timer(job, token, await this.provisioner.expire(job.data.sessionId));
      case JobName.IdleCheck:
        return this.timer(job, token, await this.provisioner.checkIdle(job.data.sessionId));
      case JobName.DeadlineWarning:
        return this.timer(job, token, await this.provisioner.warnDeadline(job.data.sessionId));
      case JobName.CleanupSweep:
        return this.cleanup.sweep((progress) => job.updateProgress(progress));
      case JobName.RemoveVolume:
        return this.cleanup.removeVolume(job.data.volume);
    }
  }

  /** A timer whose deadline moved (activity, an extension) waits again, as the same job. */
  private async timer(job: Job, token: string | undefined, outcome: TimerOutcome): Promise<void> {
    if (outcome === 'done' || !token) return;
    await job.moveToDelayed(outcome.redelayTo.getTime(), token);
    throw new DelayedError();
  }
}
