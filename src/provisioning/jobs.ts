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
  [JobName.ProvisionSession]: {
    sessionId: string;
    /**
     * The container's callback secret. Only its hash is in Postgres; the
     * plaintext lives in Redis just until the container has it (the job is
     * removed on completion), and a re-delivered job hands the same secret to
     * an adopted container.
     */
    callbackToken: string;
  };
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
