import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { CleanupService } from './cleanup.service';

/**
 * Reconciles once at worker start, so sessions and containers left by a
 * crash or an outage are settled without waiting a whole interval. (The
 * repeatable schedule itself is kept by QueueReconciler.)
 */
@Injectable()
export class CleanupScheduler implements OnApplicationBootstrap {
  private readonly logger = new Logger(CleanupScheduler.name);

  constructor(private readonly cleanup: CleanupService) {}

  onApplicationBootstrap(): void {
    this.cleanup
      .sweep()
      .then((report) => this.logger.log({ msg: 'start-up reconciliation done', ...report }))
      .catch((error: Error) => this.logger.error({ msg: 'start-up reconciliation failed', error: error.message }));
  }
}
