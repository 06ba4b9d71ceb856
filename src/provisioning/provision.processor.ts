import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Job } from 'bullmq';
import { BerthConfig } from '../config/berth-config';
import { JobName, JobPayloads, QueueName } from './jobs';
import { SessionProvisioner } from './session-provisioner.service';

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

  async process(job: ProvisionJob): Promise<string> {
    const { sessionId, callbackToken } = job.data;
    try {
      return await this.provisioner.provision(sessionId, callbackToken, (step) => job.updateProgress({ step }));
    } catch (error) {
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
