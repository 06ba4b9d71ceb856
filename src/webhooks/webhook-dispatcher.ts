import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { PgListener } from '../database/pg-listener';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { SESSION_EVENTS_CHANNEL } from '../sessions/session-event-stream';
import { WebhooksRepository } from './webhooks.repository';

/** Events read per pass. */
const BATCH = 500;
/** A pass also runs this often, in case a notification was missed. */
const FALLBACK_MS = 5000;

/**
 * Turns session events into webhook deliveries (worker role). Reads
 * session_events after a cursor kept in Postgres, enqueues one job per
 * (endpoint, event) with an id that makes a repeat a no-op, then moves the
 * cursor: a crash in between re-enqueues, never loses. Woken by the events'
 * NOTIFY; several workers may run it at once.
 */
@Injectable()
export class WebhookDispatcher implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(WebhookDispatcher.name);
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(
    private readonly webhooks: WebhooksRepository,
    private readonly jobs: SessionJobs,
    private readonly listener: PgListener,
  ) {}

  onApplicationBootstrap(): void {
    this.listener.subscribe(SESSION_EVENTS_CHANNEL, { onNotification: () => this.kick(), onResync: () => this.kick() });
    this.timer = setInterval(() => this.kick(), FALLBACK_MS);
    this.timer.unref();
    this.kick();
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Runs a pass now, or right after the one in progress. */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .catch((error: Error) => this.logger.warn({ msg: 'webhook dispatch failed; retried on the next pass', error: error.message }))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async drain(): Promise<void> {
    for (;;) {
      const { deliveries, position, last } = await this.webhooks.pending(BATCH);
      if (last === position) return;
      for (const delivery of deliveries) await this.jobs.deliverWebhook(delivery.webhookId, delivery.eventId);
      await this.webhooks.advance(last);
      if (last - position < BATCH) return;
    }
  }
}
