import { Module } from '@nestjs/common';
import { QueuesModule } from '../provisioning/queues.module';
import { WebhookDeliveryProcessor } from './webhook-delivery.processor';
import { WebhookDispatcher } from './webhook-dispatcher';
import { WebhookUrlPolicy } from './webhook-url-policy';
import { WebhooksController } from './webhooks.controller';
import { WebhooksRepository } from './webhooks.repository';

/** `/api/v1/webhooks` (API role). */
@Module({
  controllers: [WebhooksController],
  providers: [WebhooksRepository, WebhookUrlPolicy],
})
export class WebhooksApiModule {}

/** Dispatch and delivery (worker role). */
@Module({
  imports: [QueuesModule],
  providers: [WebhooksRepository, WebhookUrlPolicy, WebhookDispatcher, WebhookDeliveryProcessor],
})
export class WebhooksWorkerModule {}
