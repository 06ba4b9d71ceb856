import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { QueueName } from './jobs';
import { SessionJobs } from './session-jobs.service';

/** The queues and their producer; imported by the API and the worker alike. */
@Module({
  imports: [BullModule.registerQueue({ name: QueueName.Provisioning }, { name: QueueName.Lifecycle }, { name: QueueName.Webhooks })],
  providers: [SessionJobs],
  exports: [SessionJobs, BullModule],
})
export class QueuesModule {}
