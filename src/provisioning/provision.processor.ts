import { Processor, WorkerHost } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { DelayedError, Job, UnrecoverableError } from 'bullmq';
import { BerthConfig } from '../config/berth-config';
import { PlatformError } from '../platform/container-platform';
import { isDependencyUnavailable } from '../common/dependency-errors';
import { JobName, JobPayloads, QueueName, WORKER_LOCKS } from './jobs';
import { ProvisioningInterrupted, SessionProvisioner } from './session-provisioner.service';
import { logWorkerEvents } from './worker-events';

type ProvisionJob = Job<JobPayloads[JobName.ProvisionSession], unknown, JobName.ProvisionSession | JobName.WarmContainer>;

/** A session waiting for capacity checks again this often even if no ending session wakes it. */
const QUEUED_RECHECK_MS = 5000;

/** While Postgres is unreachable a provisioning job is tried again this often, without spending an attempt. */
const DEPENDENCY_RETRY_MS = 1000;

/** Thin: BullMQ plumbing around SessionProvisioner.provision (a session) and .warm (a pool container). */
@Processor(QueueName.Provisioning, WORKER_LOCKS)
export class ProvisionProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ProvisionProcessor.name);

  constructor(
    private readonly provisioner: SessionProvisioner,
    private readonly config: BerthConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.provisioning.concurrency;
    logWorkerEvents(this.worker, this.logger);
  }

  /**
   * Close the BullMQ worker here, before Nest's shutdown phase closes the
   * database: stop fetching, let watching jobs hand themselves back, and wait
   * for the rest of the active jobs while Postgres is still there.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.provisioner.stopWatching();
    await this.worker.close();
  }

  async process(job: ProvisionJob, token?: string): Promise<string> {
    const { sessionId } = job.data;
    try {
      const outcome =
        job.name === JobName.WarmContainer
          ? await this.provisioner.warm(sessionId)
          : await this.provisioner.provision(sessionId, (step) => job.updateProgress({ step }));
      if (outcome === 'queued' && token) {
        // No capacity yet: wait without spending an attempt. A session ending
        // promotes this job at once; the delay is only the fallback.
        await job.moveToDelayed(Date.now() + QUEUED_RECHECK_MS, token);
        throw new DelayedError();
      }
      return outcome;
    } catch (error) {
      if (error instanceof DelayedError) throw error;
      if (error instanceof ProvisioningInterrupted && token) {
        // Back to the queue without spending an attempt.
        this.logger.log({ msg: 'provisioning handed back to the queue for another worker', sessionId });
        await job.moveToDelayed(Date.now() + 500, token);
        throw new DelayedError();
      }
      if (token && isDependencyUnavailable(error) && !(error instanceof PlatformError)) {
        // Postgres unreachable: not the session's fault. Spending attempts on it
        // failed provisioning after ~15 s of outage (PROVISION_ATTEMPTS with
        // backoff); now the job waits the outage out, and the start timeout
        // still bounds how long the session may take.
        await job.moveToDelayed(Date.now() + DEPENDENCY_RETRY_MS, token);
        throw new DelayedError();
      }
      const message = (error as Error).message;
      const attempts = job.opts.attempts ?? 1;
      if (error instanceof PlatformError && !error.transient) {
        // Retrying cannot help: fail now and tell BullMQ not to retry.
        await this.provisioner.failProvisioning(sessionId, message);
        throw new UnrecoverableError(message);
      }
      if (job.attemptsMade + 1 >= attempts) {
        await this.provisioner.failProvisioning(sessionId, `provisioning failed after ${attempts} attempts: ${message}`);
      } else {
        this.logger.warn({ msg: 'provisioning attempt failed; will retry', sessionId, attempt: job.attemptsMade + 1, error: message });
      }
      throw error;
    }
  }
}
