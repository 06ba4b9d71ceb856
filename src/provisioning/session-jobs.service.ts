import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { BerthConfig } from '../config/berth-config';
import { JobName, JobPayloads, QueueName, jobId } from './jobs';

/** How long an enqueue may take before the request gives up with 503. */
const ENQUEUE_TIMEOUT_MS = 2000;

/** The producer side of the queues: the only way the API and the worker schedule work. */
@Injectable()
export class SessionJobs {
  constructor(
    @InjectQueue(QueueName.Provisioning) private readonly provisioning: Queue,
    @InjectQueue(QueueName.Lifecycle) private readonly lifecycle: Queue,
    private readonly config: BerthConfig,
  ) {}

  async provision(payload: JobPayloads[JobName.ProvisionSession]): Promise<void> {
    const { attempts, backoffMs } = this.config.provisioning;
    await this.add(this.provisioning, JobName.ProvisionSession, payload, {
      jobId: jobId(JobName.ProvisionSession, payload.sessionId),
      // The payload holds a secret: keep it in Redis no longer than needed.
      removeOnComplete: true,
      removeOnFail: true,
      attempts,
      backoff: { type: 'exponential', delay: backoffMs },
    });
  }

  async teardown(sessionId: string): Promise<void> {
    await this.add(this.lifecycle, JobName.TeardownSession, { sessionId }, {
      jobId: jobId(JobName.TeardownSession, sessionId),
      // Dedup only while pending: a finished teardown must not swallow a later one.
      removeOnComplete: true,
      attempts: 8,
      backoff: { type: 'exponential', delay: 1000 },
    });
  }

  /** A delayed job that ends the session at its expiry time; the cleanup sweep is the backstop. */
  async scheduleExpiry(sessionId: string, expiresAt: Date): Promise<void> {
    await this.add(this.lifecycle, JobName.ExpireSession, { sessionId }, {
      jobId: jobId(JobName.ExpireSession, sessionId),
      delay: Math.max(0, expiresAt.getTime() - Date.now()),
      attempts: 5,
      backoff: { type: 'exponential', delay: 1000 },
    });
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

  /** Drops a pending expiry job once the session has ended some other way (it would be a no-op, but holds Redis memory until then). */
  async cancelExpiry(sessionId: string): Promise<void> {
    await this.lifecycle.remove(jobId(JobName.ExpireSession, sessionId));
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
