/**
 * Queue and job names, and each job's payload keyed by its name (Immich style).
 *
 * Two queues so that slow work cannot starve urgent work: provisioning holds a
 * job until the session reports ready (bounded by the start timeout), while
 * teardown, expiry and the cleanup sweep must run promptly.
 */
export enum QueueName {
  Provisioning = 'provisioning',
  Lifecycle = 'lifecycle',
  /** Webhook deliveries: a slow or failing receiver must not hold up sessions. */
  Webhooks = 'webhooks',
}

export enum JobName {
  ProvisionSession = 'provision-session',
  /** Starts a warm pool container and waits until it is ready to be claimed (src/pool/). */
  WarmContainer = 'warm-container',
  TeardownSession = 'teardown-session',
  ExpireSession = 'expire-session',
  CleanupSweep = 'cleanup-sweep',
  RemoveVolume = 'remove-volume',
  /** Stops a session idle past its idle timeout; re-delays itself while activity moves the deadline. */
  IdleCheck = 'idle-check',
  /** Emits `expiring_soon` before the next deadline (TTL or idle); re-delays itself as deadlines move. */
  DeadlineWarning = 'deadline-warning',
  DeliverWebhook = 'deliver-webhook',
}

export interface JobPayloads {
  /** No secret in it: the container's callback secret is derived from BERTH_SECRET_KEY, so a lost job is rebuilt from the id. */
  [JobName.ProvisionSession]: { sessionId: string };
  [JobName.WarmContainer]: { sessionId: string };
  [JobName.TeardownSession]: { sessionId: string };
  [JobName.ExpireSession]: { sessionId: string };
  [JobName.CleanupSweep]: Record<string, never>;
  /** A deleted profile's (or workspace's) volume; retried while a container still mounts it. */
  [JobName.RemoveVolume]: { volume: string };
  [JobName.IdleCheck]: { sessionId: string };
  [JobName.DeadlineWarning]: { sessionId: string };
  [JobName.DeliverWebhook]: { webhookId: string; eventId: number };
}

/**
 * Job ids derived from the session id and the action: BullMQ ignores an add
 * whose id already exists, so enqueueing twice can never provision twice.
 * (BullMQ reserves ':' in custom ids, hence '-'.)
 */
export const jobId = (name: JobName, subject: string): string => `${name}-${subject}`;

export const CLEANUP_SCHEDULER_ID = 'cleanup-sweep';

/**
 * How every worker holds its jobs. BullMQ's defaults (a 30 s lock, checked
 * every 30 s, a job failed after one stall) left a crashed worker's
 * provisioning jobs unclaimed for up to a minute and then failed them. Here a
 * job's lock is renewed every 3 s and lapses 6 s after its worker dies;
 * every worker looks for lapsed locks every 3 s, so another worker resumes
 * the job within ~9 s. The price: one Redis round trip per active job every
 * 3 s, and a worker whose event loop stalls for 6 s gets its jobs delivered
 * twice (every job is idempotent). A job is failed only after 20 such
 * stalls: a session fails for a reason of its own, not because workers died.
 */
export const WORKER_LOCKS = { lockDuration: 6000, stalledInterval: 3000, maxStalledCount: 20 } as const;
