import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger, OnApplicationBootstrap } from '@nestjs/common';
import { DelayedError, Job } from 'bullmq';
import { BerthConfig } from '../config/berth-config';
import { JobName, JobPayloads, QueueName } from './jobs';
import { ProvisioningInterrupted, SessionProvisioner } from './session-provisioner.service';

type ProvisionJob = Job<JobPayloads[JobName.ProvisionSession], unknown, JobName.ProvisionSession>;

/** Thin: BullMQ plumbing around SessionProvisioner.provision. */
@Processor(QueueName.Provisioning)
export class ProvisionProcessor extends WorkerHost implements OnApplicationBootstrap {
  private readonly logger = new Logger(ProvisionProcessor.name);

  constructor(
    private readonly provisioner: SessionProvisioner,
    private readonly config: BerthConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.provisioning.concurrency;
  }

  async process(job: ProvisionJob, token?: string): Promise<string> {
    const { sessionId, callbackToken } = job.data;
    try {
      return await this.provisioner.provision(sessionId, callbackToken, (step) => job.updateProgress({ step }));
    } catch (error) {
      if (error instanceof ProvisioningInterrupted && token) {
        // Back to the queue without spending an attempt.
        this.logger.log({ msg: 'provisioning handed back to the queue for another worker', sessionId });
        await job.moveToDelayed(Date.now() + 500, token);
        throw new DelayedError();
      }
      const message = (error as Error).message;
      const attempts = job.opts.attempts ?? 1;
      if (job.attemptsMade + 1 >= attempts) {
        await this.provisioner.failAfterRetries(sessionId, message);
      } else {
        this.logger.warn({ msg: 'provisioning attempt failed; will retry', sessionId, attempt: job.attemptsMade + 1, error: message });
      }
      throw error;
    }
  }
}
