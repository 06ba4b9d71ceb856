import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Queue } from 'bullmq';
import { BerthConfig } from '../config/berth-config';
import { CLEANUP_SCHEDULER_ID, JobName, QueueName } from '../provisioning/jobs';
import { CleanupService } from './cleanup.service';

/**
 * Registers the repeatable cleanup sweep and reconciles once at worker start,
 * so sessions and containers left by a crash or an outage are settled
 * without waiting a whole interval.
 */
@Injectable()
export class CleanupScheduler implements OnApplicationBootstrap {
  private readonly logger = new Logger(CleanupScheduler.name);

  constructor(
    @InjectQueue(QueueName.Lifecycle) private readonly lifecycle: Queue,
    private readonly cleanup: CleanupService,
    private readonly config: BerthConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Upsert: every worker may call this; BullMQ keeps a single schedule, and a
    // changed interval replaces the old one.
    await this.lifecycle.upsertJobScheduler(
      CLEANUP_SCHEDULER_ID,
      { every: this.config.sessions.cleanupIntervalMs },
      { name: JobName.CleanupSweep, data: {}, opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } } },
    );
    this.cleanup
      .sweep()
      .then((report) => this.logger.log({ msg: 'start-up reconciliation done', ...report }))
      .catch((error: Error) => this.logger.error({ msg: 'start-up reconciliation failed', error: error.message }));
  }
}
