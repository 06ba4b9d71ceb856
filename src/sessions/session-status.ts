/**
 * The session state machine, in one place.
 *
 *   pending ──> starting ──> started
 *      │           │            │
 *      ├───────────┴────────────┴──> stopping ──> stopped | expired
 *      └───────────┴────────────┴──> failed
 *
 *   warming ──> warm ──(claimed by a launch)──> starting ──> started
 *      │         │
 *      ├─────────┴──> stopping (retired: too old, image changed, pool shrunk)
 *      └─────────┴──> failed
 *
 * `warming` and `warm` are the warm pool (src/pool/): a container started
 * ahead of demand, unbound, belonging to no tenant until a launch claims it.
 *
 * `stopping`: the session has ended for its users (the gateway refuses it at
 * once) while its container is being removed; it becomes `stopped` (deleted,
 * idle, removed by owner) or `expired` (TTL) once the container is gone. A
 * removal that fails is retried and shows as `removal_error`, never hidden.
 *
 * Every transition is applied with a conditional UPDATE whose WHERE clause
 * lists the states it may leave (see SessionsRepository.transition), so a job
 * delivered twice, a second worker, or a DELETE racing provisioning can never
 * move a session backwards or bring an ended one back.
 */
export enum SessionStatus {
  /** A pool container is starting (no tenant, no session yet). */
  Warming = 'warming',
  /** A pool container is ready and unbound: the next launch of its variant claims it. */
  Warm = 'warm',
  Pending = 'pending',
  Starting = 'starting',
  Started = 'started',
  Stopping = 'stopping',
  Stopped = 'stopped',
  Expired = 'expired',
  Failed = 'failed',
}

/** What a session runs; each kind is a profile over the one lifecycle (src/kinds/). */
export enum SessionKind {
  Terminal = 'terminal',
  Browser = 'browser',
}

/** Why a session ended (or is ending): kept on the row and in its events. */
export enum EndReason {
  Deleted = 'deleted',
  Ttl = 'ttl',
  Idle = 'idle',
  OwnerRemoved = 'owner_removed',
  Failed = 'failed',
  /** A warm pool container replaced (too old, stale image, pool shrunk) before anyone claimed it. */
  Retired = 'retired',
}

/** The statuses a tenant ever sees on a session (a pool container is nobody's until claimed). */
export const SESSION_STATUSES = Object.values(SessionStatus).filter(
  (status) => status !== SessionStatus.Warming && status !== SessionStatus.Warm,
) as SessionStatus[];

/** States in which a session is in use and may become `started`. */
export const LIVE_STATUSES = [SessionStatus.Pending, SessionStatus.Starting, SessionStatus.Started] as const;

/** The warm pool's states: a container no tenant owns yet. */
export const POOL_STATUSES = [SessionStatus.Warming, SessionStatus.Warm] as const;

/** States in which a session may still own a container (and hold its volume and port). */
export const HOLDING_STATUSES = [...POOL_STATUSES, ...LIVE_STATUSES, SessionStatus.Stopping] as const;

export const FINAL_STATUSES = [SessionStatus.Stopped, SessionStatus.Expired, SessionStatus.Failed] as const;

/** The two ways `stopping` ends (a retired pool container ends `stopped`, end reason `retired`). */
export type StopStatus = SessionStatus.Stopped | SessionStatus.Expired;

export function isLive(status: SessionStatus): boolean {
  return (LIVE_STATUSES as readonly SessionStatus[]).includes(status);
}

export function isFinal(status: SessionStatus): boolean {
  return (FINAL_STATUSES as readonly SessionStatus[]).includes(status);
}

/** Which states each target state may be entered from. */
export const ALLOWED_SOURCES: Record<SessionStatus, readonly SessionStatus[]> = {
  [SessionStatus.Warming]: [],
  [SessionStatus.Warm]: [SessionStatus.Warming],
  [SessionStatus.Pending]: [],
  // `starting` may be re-entered: a provisioning job re-delivered after a worker
  // crash continues where the first attempt stopped (the platform adopts the container).
  // From `warm` only through the claim (SessionsRepository.create), which sets the tenant.
  [SessionStatus.Starting]: [SessionStatus.Pending, SessionStatus.Starting],
  [SessionStatus.Started]: [SessionStatus.Starting],
  [SessionStatus.Stopping]: [...POOL_STATUSES, ...LIVE_STATUSES],
  [SessionStatus.Stopped]: [SessionStatus.Stopping],
  [SessionStatus.Expired]: [SessionStatus.Stopping],
  [SessionStatus.Failed]: [...POOL_STATUSES, ...LIVE_STATUSES],
};
