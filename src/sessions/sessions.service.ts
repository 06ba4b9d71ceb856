import { Injectable, Logger } from '@nestjs/common';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { generateToken, hashToken } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { SessionEvents } from './session-events';
import { SessionKind, SessionStatus, isLive } from './session-status';
import { Session } from './session.entity';
import { ListQuery, ProfileInUse, SessionsRepository } from './sessions.repository';
import { KindProfiles } from '../kinds/kind-profiles';

/** States a waiting GET waits out. */
const SETTLING = [SessionStatus.Pending, SessionStatus.Starting];

/** How often a waiting GET re-reads the row: a safety net when changes are pushed, the mechanism when they are not. */
const REREAD_PUSHED_MS = 2000;
const REREAD_POLLED_MS = 100;

/** What a launch asks for; the kind's controller validated the kind-specific parts. */
export interface LaunchRequest {
  ttlSeconds?: number;
  /** Kind options (browser: start_url, headless, viewport, view_only), stored and handed to the agent. */
  options?: Record<string, unknown>;
  /** A persistent profile: at most one live session holds it, a second launch is given that one. */
  profile?: { name: string; volume: string };
}

export interface CreatedSession {
  session: Session;
  /** Plaintext, returned to the caller once; only its hash is stored. */
  accessToken: string;
  /** True when an existing live session was handed out (its profile was in use) rather than created. */
  reused: boolean;
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
    private readonly kinds: KindProfiles,
  ) {}

  /** Starts a session of any kind (the kind's profile says what it runs), or hands out the live one holding its profile. */
  async create(kind: SessionKind, request: LaunchRequest): Promise<CreatedSession> {
    const settings = this.kinds.get(kind).settings;
    if (request.ttlSeconds !== undefined && request.ttlSeconds > settings.ttlSeconds) {
      throw new DomainException(ErrorCode.InvalidRequest, `ttl_seconds must not exceed ${settings.ttlSeconds} for a ${kind}`);
    }
    // Refuse before writing anything when the queue is known to be down.
    await this.jobs.assertQueueReachable();
    if (request.profile) {
      const live = await this.sessions.findLiveByProfile(request.profile.name);
      if (live) return this.handOut(live);
    }
    const accessToken = generateToken();
    const callbackToken = generateToken();
    let session: Session;
    try {
      session = await this.sessions.create({
        kind,
        image: settings.image,
        platform: this.config.platform.kind,
        ttlSeconds: request.ttlSeconds ?? settings.ttlSeconds,
        callbackTokenHash: hashToken(callbackToken),
        accessTokenHash: hashToken(accessToken),
        options: request.options ?? {},
        profile: request.profile?.name ?? null,
        volume: request.profile?.volume ?? null,
      });
    } catch (error) {
      // A concurrent launch took the profile between our read and our insert: hand that one out.
      if (!(error instanceof ProfileInUse)) throw error;
      const live = await this.sessions.findLiveByProfile(error.profile);
      if (!live) throw new DomainException(ErrorCode.NotReady, `Profile ${error.profile} is changing hands; retry`);
      return this.handOut(live);
    }
    try {
      await this.jobs.provision({ sessionId: session.id, callbackToken });
    } catch (error) {
      await this.abandon(session.id);
      throw error;
    }
    this.logger.log({ msg: 'session created', sessionId: session.id, kind, expiresAt: session.expiresAt.toISOString() });
    return { session, accessToken, reused: false };
  }

  /** Gives a caller its own way into a live session: a fresh access token. */
  private async handOut(session: Session): Promise<CreatedSession> {
    const accessToken = generateToken();
    await this.sessions.addAccessToken(session.id, hashToken(accessToken));
    this.logger.log({ msg: 'live session handed out again', sessionId: session.id, profile: session.profile });
    return { session, accessToken, reused: true };
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

  /** A session by id; with `kind`, only of that kind (the kind's own routes). */
  async get(id: string, kind?: SessionKind): Promise<Session> {
    const session = await this.sessions.findById(id, kind);
    if (!session) throw new DomainException(ErrorCode.SessionNotFound, `No ${kind ?? 'session'} with id ${id}`);
    return session;
  }

  /**
   * Like `get`, but while the session is still `pending` or `starting`, holds
   * the request up to `waitSeconds` for it to move on, so clients learn of
   * `started` at once instead of polling.
   */
  async getWhenSettled(id: string, kind: SessionKind | undefined, waitSeconds: number): Promise<Session> {
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
  async stop(id: string, kind?: SessionKind): Promise<Session> {
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
