import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { BerthConfig } from '../config/berth-config';
import { idleDeadline, warningTime } from '../sessions/session-deadlines';
import { Session } from '../sessions/session.entity';
import { CLEANUP_SCHEDULER_ID, JobName, JobPayloads, QueueName, jobId } from './jobs';

/** How long an enqueue may take before the request gives up with 503. */
const ENQUEUE_TIMEOUT_MS = 2000;

/** The producer side of the queues: the only way the API and the worker schedule work. */
@Injectable()
export class SessionJobs {
  constructor(
    @InjectQueue(QueueName.Provisioning) private readonly provisioning: Queue,
    @InjectQueue(QueueName.Lifecycle) private readonly lifecycle: Queue,
    @InjectQueue(QueueName.Webhooks) private readonly webhooks: Queue,
    private readonly config: BerthConfig,
  ) {}

  async provision(payload: JobPayloads[JobName.ProvisionSession]): Promise<void> {
    const { attempts, backoffMs } = this.config.provisioning;
    await this.add(this.provisioning, JobName.ProvisionSession, payload, {
      jobId: jobId(JobName.ProvisionSession, payload.sessionId),
      removeOnComplete: true,
      removeOnFail: true,
      attempts,
      backoff: { type: 'exponential', delay: backoffMs },
    });
  }

  /** Starts a warm pool container (its row is `warming`); same queue and retries as a session's provisioning. */
  async warm(sessionId: string): Promise<void> {
    const { attempts, backoffMs } = this.config.provisioning;
    await this.add(this.provisioning, JobName.WarmContainer, { sessionId }, {
      jobId: jobId(JobName.WarmContainer, sessionId),
      removeOnComplete: true,
      removeOnFail: true,
      attempts,
      backoff: { type: 'exponential', delay: backoffMs },
    });
  }

  async teardown(sessionId: string): Promise<void> {
    await this.add(this.lifecycle, JobName.TeardownSession, { sessionId }, {
      jobId: jobId(JobName.TeardownSession, sessionId),
      // Dedup only while pending: a finished teardown, or one that failed for good, must not
      // swallow a later one (BullMQ ignores an add whose id it still holds). Its failure is
      // logged, and the session stays `stopping`, where the sweep retries it.
      removeOnComplete: true,
      removeOnFail: true,
      attempts: 8,
      backoff: { type: 'exponential', delay: 1000 },
    });
  }

  /**
   * A delayed job that ends the session at its expiry time (the cleanup sweep
   * is the backstop). Scheduling again moves it: an extended session keeps
   * one expiry job, due at the new time.
   */
  async scheduleExpiry(sessionId: string, expiresAt: Date): Promise<void> {
    await this.scheduleAt(JobName.ExpireSession, sessionId, expiresAt);
  }

  /**
   * A started session's timers: idle check and expiring-soon warning, plus
   * its TTL (already there for a cold start, which schedules it at admission;
   * a session bound to a warm pool container gets all three here).
   */
  async scheduleStartedTimers(session: Session): Promise<void> {
    const idle = idleDeadline(session);
    await Promise.all([
      this.scheduleExpiry(session.id, session.expiresAt),
      idle ? this.scheduleIdleCheck(session.id, idle) : undefined,
      this.scheduleDeadlineWarning(session.id, warningTime(session, this.config.sessions.expiringSoonSeconds)),
    ]);
  }

  /** The session's idle check, due when it would become idle if nothing happens meanwhile. */
  async scheduleIdleCheck(sessionId: string, at: Date): Promise<void> {
    await this.scheduleAt(JobName.IdleCheck, sessionId, at);
  }

  /** The `expiring_soon` warning, due EXPIRING_SOON_SECONDS before the session's next deadline. */
  async scheduleDeadlineWarning(sessionId: string, at: Date): Promise<void> {
    await this.scheduleAt(JobName.DeadlineWarning, sessionId, at);
  }

  /**
   * One delayed job per (session, purpose), due at `at`. An existing delayed
   * job is moved rather than duplicated; one that is running or done is left
   * to re-delay itself (the processors re-check the deadline when they run).
   */
  private async scheduleAt(name: JobName.ExpireSession | JobName.IdleCheck | JobName.DeadlineWarning, sessionId: string, at: Date): Promise<void> {
    const id = jobId(name, sessionId);
    const delay = Math.max(0, at.getTime() - Date.now());
    const existing = await this.lifecycle.getJob(id);
    if (existing && (await existing.isDelayed())) {
      await existing.changeDelay(delay);
      return;
    }
    // removeOnFail: a timer that failed for good is logged and rebuilt from Postgres by the
    // next reconciliation; kept in Redis, it would block that rebuild (same id).
    await this.add(this.lifecycle, name, { sessionId }, { jobId: id, delay, removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: 'exponential', delay: 1000 } });
  }

  /**
   * The repeatable cleanup sweep. Upsert: every worker may call this; BullMQ
   * keeps a single schedule, and a changed interval replaces the old one.
   */
  async scheduleSweep(everyMs: number): Promise<void> {
    await this.lifecycle.upsertJobScheduler(
      CLEANUP_SCHEDULER_ID,
      { every: everyMs },
      { name: JobName.CleanupSweep, data: {}, opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } } },
    );
  }

  /** One event for one endpoint; the id makes a second dispatch of the same pair a no-op. */
  async deliverWebhook(webhookId: string, eventId: number): Promise<void> {
    await this.add(this.webhooks, JobName.DeliverWebhook, { webhookId, eventId }, {
      jobId: jobId(JobName.DeliverWebhook, `${webhookId}-${eventId}`),
      // About 17 minutes of retries in all (2 s doubling), then kept a week as failed.
      attempts: 10,
      backoff: { type: 'exponential', delay: 2000 },
    });
  }

  /** Wakes provisioning jobs waiting for capacity, oldest first. */
  async wakeQueued(sessionIds: string[]): Promise<void> {
    for (const sessionId of sessionIds) {
      const job = await this.provisioning.getJob(jobId(JobName.ProvisionSession, sessionId));
      if (job && (await job.isDelayed())) await job.promote().catch(() => undefined);
    }
  }

  /** Removes a persistent volume nothing refers to any more; retried (with backoff) while it is still mounted. */
  async removeVolume(volume: string): Promise<void> {
    await this.add(this.lifecycle, JobName.RemoveVolume, { volume }, {
      jobId: jobId(JobName.RemoveVolume, volume),
      removeOnComplete: true,
      attempts: 30,
      backoff: { type: 'exponential', delay: 2000 },
    });
  }

  /** Drops a session's timers once it has ended (they would be no-ops, but hold Redis memory until due). */
  async cancelTimers(sessionId: string): Promise<void> {
    for (const name of [JobName.ExpireSession, JobName.IdleCheck, JobName.DeadlineWarning]) {
      await this.lifecycle.remove(jobId(name, sessionId)).catch(() => undefined);
    }
  }

  async pingRedis(): Promise<void> {
    const client = (await this.provisioning.client) as unknown as Redis;
    await withTimeout(client.ping(), ENQUEUE_TIMEOUT_MS, 'Redis did not answer');
  }

  /** ioredis queues commands while disconnected; refuse instead, so callers fail fast. */
  async assertQueueReachable(queue: Queue = this.provisioning): Promise<void> {
    const client = await queue.client;
    if (client.status !== 'ready') {
      throw new DomainException(ErrorCode.DependencyUnavailable, 'The job queue (Redis) is unreachable; nothing was changed. Retry shortly.');
    }
  }

  private async add<N extends JobName>(queue: Queue, name: N, data: JobPayloads[N], options: JobsOptions): Promise<void> {
    await this.assertQueueReachable(queue);
    await withTimeout(
      queue.add(name, data, { removeOnComplete: { age: 3600, count: 10_000 }, removeOnFail: { age: 7 * 86400 }, ...options }),
      ENQUEUE_TIMEOUT_MS,
      'The job queue (Redis) did not answer in time; nothing was changed. Retry shortly.',
    );
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DomainException(ErrorCode.DependencyUnavailable, message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
