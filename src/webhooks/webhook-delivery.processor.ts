import { Processor, WorkerHost } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Job, UnrecoverableError } from 'bullmq';
import { request } from 'undici';
import { deriveSecret } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { JobName, JobPayloads, QueueName, WORKER_LOCKS } from '../provisioning/jobs';
import { eventBody } from '../sessions/session-event-stream';
import { signatureHeader } from './webhook-signature';
import { WebhookUrlPolicy } from './webhook-url-policy';
import { WebhooksRepository } from './webhooks.repository';
import { logWorkerEvents } from '../provisioning/worker-events';

const DELIVERY_TIMEOUT_MS = 10_000;

/**
 * POSTs one event to one endpoint, signed. A 2xx is done; anything else (or
 * no answer) is thrown, and BullMQ retries with exponential backoff. An
 * endpoint or event that no longer exists, or a URL that now resolves to a
 * forbidden address, is given up at once.
 */
@Processor(QueueName.Webhooks, { ...WORKER_LOCKS, concurrency: 16 })
export class WebhookDeliveryProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookDeliveryProcessor.name);

  constructor(
    private readonly webhooks: WebhooksRepository,
    private readonly urls: WebhookUrlPolicy,
    private readonly config: BerthConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = 16;
    logWorkerEvents(this.worker, this.logger);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.worker.close();
  }

  async process(job: Job<JobPayloads[JobName.DeliverWebhook]>): Promise<number> {
    const { webhookId, eventId } = job.data;
    const [webhook, event] = await Promise.all([this.webhooks.find(webhookId), this.webhooks.event(eventId)]);
    if (!webhook || !event) return 0; // removed since: nothing to deliver
    try {
      await this.urls.check(webhook.url);
    } catch (error) {
      throw new UnrecoverableError(`webhook ${webhookId} refused: ${(error as Error).message}`);
    }
    const body = JSON.stringify({ ...eventBody(event), tenant_id: event.tenantId, webhook_id: webhook.id });
    const secret = deriveSecret(this.config.secretKey, 'webhook', webhook.id);
    const response = await request(webhook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'berth-webhooks',
        'berth-event-id': String(event.id),
        'berth-event-type': event.type,
        'berth-signature': signatureHeader(secret, body),
      },
      body,
      headersTimeout: DELIVERY_TIMEOUT_MS,
      bodyTimeout: DELIVERY_TIMEOUT_MS,
      maxRedirections: 0,
    } as Parameters<typeof request>[1]);
    await response.body.dump();
    if (response.statusCode < 200 || response.statusCode >= 300) {
      this.logger.warn({ msg: 'webhook delivery refused; will retry', sessionId: event.sessionId, webhookId, status: response.statusCode, attempt: job.attemptsMade + 1 });
      throw new Error(`endpoint answered ${response.statusCode}`);
    }
    return response.statusCode;
  }
}
