import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { BerthConfig } from '../config/berth-config';
import { CLEANUP_SCHEDULER_ID, JobName, QueueName, jobId } from '../provisioning/jobs';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { idleDeadline, warningTime } from '../sessions/session-deadlines';
import { SessionStatus } from '../sessions/session-status';
import { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';

/** Longer than any bind takes (PoolBinder): a claimed pool container older than this with no job was abandoned. */
const CLAIM_GRACE_MS = 30_000;

/**
 * How often a worker checks that Redis still holds its schedule (a flush or an
 * empty restart loses it) and that no session waits `pending` without a job.
 */
const SENTINEL_CHECK_MS = 3000;

/**
 * A session's API process enqueues its provisioning job right after the
 * INSERT; one `pending` this long without a job lost it (the process died in
 * between) and gets one from the next check.
 */
const PENDING_GRACE_SECONDS = 2;

export interface ReconcileReport {
  sessions: number;
  jobsAdded: number;
}

/**
 * Postgres is the truth; Redis only holds work that can be rebuilt from it.
 * Makes Redis agree with Postgres: the repeatable sweep is scheduled, every
 * session that needs a job has one (provisioning for pending and starting,
 * the TTL for every live one, idle and expiring-soon for started ones,
 * teardown for stopping ones, warm-up for pool containers still warming). Runs when a worker starts, whenever its Redis
 * connection comes back, whenever the schedule is found missing (Redis
 * flushed or restarted empty), and on every sweep. Idempotent (jobs have
 * deterministic ids; existing ones are left alone) and cheap: one query and
 * one pipelined existence check for all sessions, then adds only what is
 * missing. Several workers may run it at once.
 */
@Injectable()
export class QueueReconciler implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(QueueReconciler.name);
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<ReconcileReport> | null = null;
  private closed = false;

  constructor(
    @InjectQueue(QueueName.Provisioning) private readonly provisioning: Queue,
    @InjectQueue(QueueName.Lifecycle) private readonly lifecycle: Queue,
    private readonly sessions: SessionsRepository,
    private readonly jobs: SessionJobs,
    private readonly config: BerthConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.reconcileSoon('worker started');
    const client = await this.lifecycle.client;
    // ioredis emits `ready` on every reconnection: whatever Redis lost meanwhile is rebuilt.
    client.on('ready', () => this.reconcileSoon('Redis connection back'));
    this.timer = setInterval(() => void this.checkSentinel(), SENTINEL_CHECK_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Runs a reconciliation (or joins the one in progress); errors are logged, the next trigger retries. */
  reconcileSoon(reason: string): void {
    void this.reconcile(reason).catch((error: Error) => this.logger.warn({ msg: 'reconciliation failed; retried on the next trigger', reason, error: error.message }));
  }

  async reconcile(reason: string): Promise<ReconcileReport> {
    if (this.closed) return { sessions: 0, jobsAdded: 0 };
    if (!this.running) {
      this.running = this.run().finally(() => (this.running = null));
    }
    const report = await this.running;
    if (report.jobsAdded > 0) this.logger.log({ msg: 'Redis reconciled with Postgres', reason, ...report });
    return report;
  }

  private async checkSentinel(): Promise<void> {
    try {
      if (!(await this.lifecycle.getJobScheduler(CLEANUP_SCHEDULER_ID))) {
        this.reconcileSoon('the sweep schedule was missing from Redis');
        return;
      }
      // One small indexed query: the pending sessions older than the grace, usually none.
      const pending = await this.sessions.pendingSince(PENDING_GRACE_SECONDS, 500);
      if (pending.length === 0) return;
      const lost = await this.missing(pending.map((sessionId) => ({ queue: this.provisioning, name: JobName.ProvisionSession, sessionId })));
      if (lost.length > 0) this.reconcileSoon('a pending session had no provisioning job');
    } catch {
      // Redis or Postgres unreachable: reconnecting triggers a run when it is back.
    }
  }

  private async run(): Promise<ReconcileReport> {
    await this.jobs.scheduleSweep(this.config.sessions.cleanupIntervalMs);
    const sessions = await this.sessions.needingJobs();
    const wanted: { queue: Queue; name: JobName; sessionId: string; at?: Date }[] = [];
    for (const session of sessions) {
      if (session.status === SessionStatus.Warming) {
        wanted.push({ queue: this.provisioning, name: JobName.WarmContainer, sessionId: session.id });
        continue;
      }
      if (session.status === SessionStatus.Warm) continue;
      // A launch that claimed a pool container is binding it right now; only if it died does the worker take over.
      if (session.status === SessionStatus.Starting && session.poolVariant && Date.now() - (session.admittedAt?.getTime() ?? 0) < CLAIM_GRACE_MS) continue;
      if (session.status === SessionStatus.Pending || session.status === SessionStatus.Starting) {
        wanted.push({ queue: this.provisioning, name: JobName.ProvisionSession, sessionId: session.id });
      }
      if (session.status === SessionStatus.Stopping) {
        wanted.push({ queue: this.lifecycle, name: JobName.TeardownSession, sessionId: session.id });
        continue;
      }
      wanted.push({ queue: this.lifecycle, name: JobName.ExpireSession, sessionId: session.id, at: session.expiresAt });
      if (session.status === SessionStatus.Started) {
        const idle = idleDeadline(session);
        if (idle) wanted.push({ queue: this.lifecycle, name: JobName.IdleCheck, sessionId: session.id, at: idle });
        wanted.push({ queue: this.lifecycle, name: JobName.DeadlineWarning, sessionId: session.id, at: warningTime(session, this.config.sessions.expiringSoonSeconds) });
      }
    }
    const missing = await this.missing(wanted);
    for (const job of missing) {
      if (job.name === JobName.ProvisionSession) await this.jobs.provision({ sessionId: job.sessionId });
      else if (job.name === JobName.WarmContainer) await this.jobs.warm(job.sessionId);
      else if (job.name === JobName.TeardownSession) await this.jobs.teardown(job.sessionId);
      else if (job.name === JobName.ExpireSession) await this.jobs.scheduleExpiry(job.sessionId, job.at!);
      else if (job.name === JobName.IdleCheck) await this.jobs.scheduleIdleCheck(job.sessionId, job.at!);
      else if (job.name === JobName.DeadlineWarning) await this.jobs.scheduleDeadlineWarning(job.sessionId, job.at!);
    }
    return { sessions: sessions.length, jobsAdded: missing.length };
  }

  /**
   * The wanted jobs Redis does not hold as pending work, found with one pipeline per queue.
   * A job whose key exists but which sits in the queue's failed or completed set is no
   * work at all: BullMQ ignores an add with its id, so it would never be rebuilt. Such a
   * leftover is removed here, and counts as missing.
   */
  private async missing<T extends { queue: Queue; name: JobName; sessionId: string }>(wanted: T[]): Promise<T[]> {
    if (wanted.length === 0) return [];
    const out: T[] = [];
    for (const queue of [this.provisioning, this.lifecycle]) {
      const mine = wanted.filter((job) => job.queue === queue);
      if (mine.length === 0) continue;
      const client = (await queue.client) as unknown as Redis;
      const pipeline = client.pipeline();
      for (const job of mine) {
        const id = jobId(job.name, job.sessionId);
        pipeline.exists(queue.toKey(id));
        pipeline.zscore(queue.toKey('failed'), id);
        pipeline.zscore(queue.toKey('completed'), id);
      }
      const results = (await pipeline.exec()) ?? [];
      for (const [i, job] of mine.entries()) {
        const [[existsError, exists], [failedError, failed], [completedError, completed]] = [results[3 * i], results[3 * i + 1], results[3 * i + 2]].map(
          (result) => result ?? [null, null],
        );
        if (existsError || failedError || completedError) continue; // unknown: the next run decides
        if (exists === 0) {
          out.push(job);
        } else if (failed !== null || completed !== null) {
          // Removal fails only if a worker holds the job right now: then it is not stale.
          const removed = await queue.remove(jobId(job.name, job.sessionId)).catch(() => 0);
          if (removed) {
            this.logger.log({ msg: 'finished job of a session that still needs it; rebuilt', sessionId: job.sessionId, job: job.name, was: failed !== null ? 'failed' : 'completed' });
            out.push(job);
          }
        }
      }
    }
    return out;
  }
}
