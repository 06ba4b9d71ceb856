import { SessionStatus } from './session-status';
import { Session } from './session.entity';

/** When a started session becomes idle if nothing happens (null: it has no idle timeout). */
export function idleDeadline(session: Pick<Session, 'idleTimeoutSeconds' | 'lastActivityAt' | 'startedAt'>): Date | null {
  const since = session.lastActivityAt ?? session.startedAt;
  if (session.idleTimeoutSeconds === null || !since) return null;
  return new Date(since.getTime() + session.idleTimeoutSeconds * 1000);
}

/** The deadline that ends the session first if nothing changes: its TTL, or being idle. */
export function nextDeadline(session: Pick<Session, 'status' | 'expiresAt' | 'idleTimeoutSeconds' | 'lastActivityAt' | 'startedAt'>): {
  at: Date;
  which: 'ttl' | 'idle';
} {
  const idle = session.status === SessionStatus.Started ? idleDeadline(session) : null;
  return idle && idle < session.expiresAt ? { at: idle, which: 'idle' } : { at: session.expiresAt, which: 'ttl' };
}

/** When the `expiring_soon` warning for the next deadline is due. */
export function warningTime(session: Parameters<typeof nextDeadline>[0], expiringSoonSeconds: number): Date {
  return new Date(nextDeadline(session).at.getTime() - expiringSoonSeconds * 1000);
}
