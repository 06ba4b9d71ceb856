/**
 * The session state machine, in one place.
 *
 *   pending ──> starting ──> started
 *      │           │            │
 *      └───────────┴────────────┴──> stopped | expired | failed   (terminal states)
 *
 * Every transition is applied with a conditional UPDATE whose WHERE clause
 * lists the states it may leave (see SessionsRepository.transition), so a job
 * delivered twice, a second worker, or a DELETE racing provisioning can never
 * move a session backwards or bring a finished one back.
 */
export enum SessionStatus {
  Pending = 'pending',
  Starting = 'starting',
  Started = 'started',
  Stopped = 'stopped',
  Expired = 'expired',
  Failed = 'failed',
}

/** What a session runs; each kind is a profile over the one lifecycle (src/kinds/). */
export enum SessionKind {
  Terminal = 'terminal',
  Browser = 'browser',
}

/** States in which a session may own a container. */
export const LIVE_STATUSES = [SessionStatus.Pending, SessionStatus.Starting, SessionStatus.Started] as const;

export const FINAL_STATUSES = [SessionStatus.Stopped, SessionStatus.Expired, SessionStatus.Failed] as const;

export function isLive(status: SessionStatus): boolean {
  return (LIVE_STATUSES as readonly SessionStatus[]).includes(status);
}

/** Which states each target state may be entered from. */
export const ALLOWED_SOURCES: Record<SessionStatus, readonly SessionStatus[]> = {
  [SessionStatus.Pending]: [],
  // `starting` may be re-entered: a provisioning job re-delivered after a worker
  // crash continues where the first attempt stopped (the platform adopts the container).
  [SessionStatus.Starting]: [SessionStatus.Pending, SessionStatus.Starting],
  [SessionStatus.Started]: [SessionStatus.Starting],
  [SessionStatus.Stopped]: LIVE_STATUSES,
  [SessionStatus.Expired]: LIVE_STATUSES,
  [SessionStatus.Failed]: LIVE_STATUSES,
};
