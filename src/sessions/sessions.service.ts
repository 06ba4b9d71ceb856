import { Injectable, Logger } from '@nestjs/common';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { generateToken, hashToken } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { SessionEvents } from './session-events';
import { SessionKind, SessionStatus, isLive } from './session-status';
import { Session } from './session.entity';
import { ListQuery, SessionsRepository } from './sessions.repository';

/** States a waiting GET waits out. */
const SETTLING = [SessionStatus.Pending, SessionStatus.Starting];

/** How often a waiting GET re-reads the row: a safety net when changes are pushed, the mechanism when they are not. */
const REREAD_PUSHED_MS = 2000;
const REREAD_POLLED_MS = 100;

export interface CreatedSession {
  session: Session;
  /** Plaintext, returned to the caller once; only its hash is stored. */
  accessToken: string;
}

/** Session lifecycle as the API sees it: create, read, end. Kind-agnostic. */
@Injectable()
export class SessionsService {
  private readonly logger = new Logger(SessionsService.name);

  constructor(
    private readonly sessions: SessionsRepository,
    private readonly jobs: SessionJobs,
    private readonly config: BerthConfig,
    private readonly events: SessionEvents,
  ) {}

  async create(kind: SessionKind, options: { ttlSeconds?: number }): Promise<CreatedSession> {
    const maxTtl = this.config.sessions.terminalTtlSeconds;
    if (options.ttlSeconds !== undefined && options.ttlSeconds > maxTtl) {
      throw new DomainException(ErrorCode.InvalidRequest, `ttl_seconds must not exceed ${maxTtl} (TERMINAL_TTL_HOURS)`);
    }
    // Refuse before writing anything when the queue is known to be down.
    await this.jobs.assertQueueReachable();
    const accessToken = generateToken();
    const callbackToken = generateToken();
    const session = await this.sessions.create({
      kind,
      image: this.config.sessions.terminalImage,
      platform: this.config.platform.kind,
      ttlSeconds: options.ttlSeconds ?? maxTtl,
      callbackTokenHash: hashToken(callbackToken),
      accessTokenHash: hashToken(accessToken),
    });
    try {
      await this.jobs.provision({ sessionId: session.id, callbackToken });
    } catch (error) {
      await this.abandon(session.id);
      throw error;
    }
    this.logger.log({ msg: 'session created', sessionId: session.id, kind, expiresAt: session.expiresAt.toISOString() });
    return { session, accessToken };
  }

  /**
   * Undoes a creation whose job could not be confirmed. Usually the row is
   * still `pending` and is deleted. But an enqueue that timed out may have
   * landed after all and a worker may already be starting it: then the
   * session is failed, and the worker removes whatever it created.
   */
  private async abandon(id: string): Promise<void> {
    try {
      if (await this.sessions.deletePending(id)) return;
      await this.sessions.transition(id, SessionStatus.Failed, { errorMessage: 'creation was abandoned: the job queue did not confirm in time' });
    } catch (error) {
      // Left `pending`: the cleanup sweep fails it after the start timeout.
      this.logger.error({ msg: 'could not undo an unconfirmed session', sessionId: id, error: (error as Error).message });
    }
  }

  async get(id: string, kind: SessionKind): Promise<Session> {
    const session = await this.sessions.findById(id, kind);
    if (!session) throw new DomainException(ErrorCode.SessionNotFound, `No ${kind} session with id ${id}`);
    return session;
  }

  /**
   * Like `get`, but while the session is still `pending` or `starting`, holds
   * the request up to `waitSeconds` for it to move on, so clients learn of
   * `started` at once instead of polling.
   */
  async getWhenSettled(id: string, kind: SessionKind, waitSeconds: number): Promise<Session> {
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      const session = await this.get(id, kind);
      const remaining = deadline - Date.now();
      if (!SETTLING.includes(session.status) || remaining <= 0 || this.events.closing) return session;
      await this.events.next(id, Math.min(this.events.pushed ? REREAD_PUSHED_MS : REREAD_POLLED_MS, remaining));
    }
  }

  list(query: ListQuery): Promise<{ items: Session[]; total: number }> {
    return this.sessions.list(query);
  }

  /**
   * Ends a session. Idempotent: ending an ended session returns it unchanged.
   * The container is removed by a teardown job (and by the provisioning job
   * itself if it loses the race), so the status is final at once.
   */
  async stop(id: string, kind: SessionKind): Promise<Session> {
    const current = await this.get(id, kind);
    if (!isLive(current.status)) return current;
    const stopped = await this.sessions.transition(id, SessionStatus.Stopped);
    if (!stopped) return this.get(id, kind); // ended concurrently by someone else
    this.events.changed(id);
    this.logger.log({ msg: 'session stopped', sessionId: id });
    await this.jobs.teardown(id).catch((error: Error) => {
      // The status is already final; the cleanup sweep removes the container if this enqueue failed.
      this.logger.warn({ msg: 'teardown not queued; cleanup will reap the container', sessionId: id, error: error.message });
    });
    return stopped;
  }
}
