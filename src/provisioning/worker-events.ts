import { Logger } from '@nestjs/common';
import { Job, Worker } from 'bullmq';

/**
 * Reports a BullMQ worker's own events in Berth's structured log. Without an
 * `error` listener BullMQ prints connection trouble (a Redis outage: "could
 * not renew lock", ECONNREFUSED) with console.error as raw multi-line stack
 * traces, which breaks one-JSON-object-per-line logs. A job that fails is
 * logged with its session, its attempt and whether it will be tried again.
 */
export function logWorkerEvents(worker: Worker, logger: Logger): void {
  worker.on('error', (error: Error) => logger.warn({ msg: 'job queue connection error; the worker reconnects on its own', queue: worker.name, error: error.message }));
  worker.on('failed', (job: Job | undefined, error: Error) => {
    if (!job) return;
    const attempts = job.opts.attempts ?? 1;
    const data = (job.data ?? {}) as { sessionId?: string; volume?: string; webhookId?: string };
    logger.warn({
      msg: job.attemptsMade >= attempts ? 'job failed for good' : 'job failed; retried with backoff',
      queue: worker.name,
      job: job.name,
      sessionId: data.sessionId,
      volume: data.volume,
      webhookId: data.webhookId,
      attempt: job.attemptsMade,
      attempts,
      error: error.message,
    });
  });
}
