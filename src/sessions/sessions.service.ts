import { Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { generateToken, hashToken } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { KindProfiles } from '../kinds/kind-profiles';
import { PoolBinder } from '../pool/pool-binder';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { Principal } from '../tenancy/principal';
import { VolumesRepository } from '../volumes/volumes.repository';
import { SessionSignals } from './session-signals';
import { EndReason, SessionKind, SessionStatus, StopStatus, isLive } from './session-status';
import { Session } from './session.entity';
import { ListQuery, QuotaExceeded, SessionConflict, SessionEventRow, SessionsRepository } from './sessions.repository';

/** States a waiting GET waits out. */
const SETTLING = [SessionStatus.Pending, SessionStatus.Starting, SessionStatus.Stopping];

/** How often a waiting GET re-reads the row: a safety net when changes are pushed, the mechanism when they are not. */
const REREAD_PUSHED_MS = 2000;
const REREAD_POLLED_MS = 100;

/** What a launch asks for; the kind's controller validated the kind-specific parts. */
export interface LaunchRequest {
  ttlSeconds?: number;
  idleTimeoutSeconds?: number;
  /** The end user the session is for. */
  owner?: string;
  /** Kind options (browser: start_url, headless, viewport, view_only), stored and handed to the agent. */
  options?: Record<string, unknown>;
  /** Persistent storage by name: a browser profile, a terminal workspace. One session at a time holds it. */
  storage?: string;
  /** Hand out the live session of the same tenant, owner, kind and storage instead of starting another. */
  reuse?: boolean;
  /** A client's key for this launch: a replay returns the same session. */
  idempotencyKey?: string;
}

export interface CreatedSession {
  session: Session;
  /** Plaintext, returned to the caller once; only its hash is stored. */
  accessToken: string;
  /** True when an existing live session was handed out rather than created (200 instead of 202). */
  reused: boolean;
}

/** Why a session is alive, and until when. */
export interface Lifecycle {
  session: Session;
  idleDeadline: Date | null;
  hardDeadline: Date;
  maxDeadline: Date;
  extensions: SessionEventRow[];
}

/**
 * The session lifecycle as the API sees it, for every kind and every tenant:
 * launch (or hand out a live one), read, keep alive, extend, end. A session
 * of another tenant is simply not found.
 */
@Injectable()
export class SessionsService {
  private readonly logger = new Logger(SessionsService.name);

  constructor(
    private readonly sessions: SessionsRepository,
    private readonly jobs: SessionJobs,
    private readonly config: BerthConfig,
    private readonly signals: SessionSignals,
    private readonly kinds: KindProfiles,
    private readonly volumes: VolumesRepository,
    private readonly pool: PoolBinder,
  ) {}

  /**
   * Starts a session of any kind (the kind's profile says what it runs), or
   * hands out the live one the request points at: an Idempotency-Key seen
   * before, `reuse` of the same owner's session, or a profile or workspace a
   * live session holds. The database decides every race (unique indexes).
   * When the warm pool holds a container that fits, the session is that
   * container, bound in this request: `started` in the response.
   */
  async create(principal: Principal, kind: SessionKind, request: LaunchRequest): Promise<CreatedSession> {
    const settings = this.kinds.get(kind).settings;
    if (request.ttlSeconds !== undefined && request.ttlSeconds > settings.ttlSeconds) {
      throw new DomainException(ErrorCode.InvalidRequest, `ttl_seconds must not exceed ${settings.ttlSeconds} for a ${kind}`);
    }
    const idle = this.idleTimeout(request.idleTimeoutSeconds);
    const requestHash = hashOf({ kind, ...request, idempotencyKey: undefined });
    // Refuse before writing anything when the queue is known to be down.
    await this.jobs.assertQueueReachable();

    if (request.idempotencyKey) {
      const replay = await this.replay(principal, request.idempotencyKey, requestHash);
      if (replay) return replay;
    }
    const owner = request.owner ?? null;
    const storage = request.storage ?? null;
    if (request.reuse) {
      const live = await this.sessions.findLiveOf(principal.tenantId, kind, owner, storage);
      if (live) return this.handOut(live, principal, 'reused');
    }
    const volume = storage ? await this.volumes.use({ tenantId: principal.tenantId, kind, owner: owner ?? '', name: storage }) : null;
    if (volume) {
      const holder = await this.sessions.findLiveByVolume(volume);
      if (holder) return this.handOut(holder, principal, 'storage in use');
    }

    const accessToken = generateToken();
    const poolVariant = this.poolVariantFor(kind, request.options ?? {}, storage);
    let session: Session;
    try {
      session = await this.sessions.create(
        {
          tenantId: principal.tenantId,
          kind,
          image: settings.image,
          platform: this.config.platform.kind,
          ttlSeconds: request.ttlSeconds ?? settings.ttlSeconds,
          accessTokenHash: hashToken(accessToken),
          options: request.options ?? {},
          owner,
          workspace: kind === SessionKind.Terminal ? storage : null,
          profile: kind === SessionKind.Browser ? storage : null,
          volume,
          reuseKey: request.reuse ? hashOf({ tenant: principal.tenantId, kind, owner, storage }) : null,
          idleTimeoutSeconds: idle,
          actor: principal.actor,
        },
        {
          perTenant: limitOf(principal.maxSessions ?? this.config.tenancy.maxSessionsPerTenant),
          perOwner: limitOf(principal.maxSessionsPerOwner ?? this.config.tenancy.maxSessionsPerOwner),
        },
        request.idempotencyKey ? { key: request.idempotencyKey, requestHash } : undefined,
        poolVariant,
      );
    } catch (error) {
      if (error instanceof QuotaExceeded) {
        throw new DomainException(ErrorCode.QuotaExceeded, `Quota reached: at most ${error.limit} live sessions per ${error.scope}`, {
          retryAfterSeconds: 30,
        });
      }
      if (!(error instanceof SessionConflict)) throw error;
      return this.afterConflict(error, principal, kind, request, owner, storage, volume, requestHash);
    }
    if (session.status === SessionStatus.Starting && session.poolVariant) {
      return { session: await this.bindClaimed(session, principal), accessToken, reused: false };
    }
    try {
      await this.jobs.provision({ sessionId: session.id });
    } catch (error) {
      await this.abandon(session.id);
      throw error;
    }
    this.logger.log({ msg: 'session created', sessionId: session.id, kind, tenantId: principal.tenantId, owner, expiresAt: session.expiresAt.toISOString() });
    return { session, accessToken, reused: false };
  }

  /** The warm pool variant that can serve this launch, if that pool is enabled. */
  private poolVariantFor(kind: SessionKind, options: Record<string, unknown>, storage: string | null): string | null {
    const variant = this.kinds.get(kind).poolVariantFor({ options, storage });
    return variant && (this.config.pool.sizes[variant] ?? 0) > 0 ? variant : null;
  }

  /**
   * Binds the warm container this launch claimed. If it cannot be bound,
   * the launch goes on as a cold start, transparently: same session, same
   * token; the provisioning job replaces the container.
   */
  private async bindClaimed(session: Session, principal: Principal): Promise<Session> {
    const outcome = await this.pool.bind(session, principal.actor);
    if ('bound' in outcome) return outcome.bound;
    if ('ended' in outcome) return outcome.ended ?? session;
    this.logger.warn({ msg: 'warm container could not be bound; starting the session cold', sessionId: session.id, error: outcome.unusable });
    await this.jobs.provision({ sessionId: session.id }).catch((error: Error) =>
      // Still `starting`: the queue reconciliation gives it a job.
      this.logger.warn({ msg: 'provisioning not queued; reconciliation will', sessionId: session.id, error: error.message }),
    );
    return session;
  }

  /** A concurrent launch won the race the database refereed: hand out what it created. */
  private async afterConflict(
    conflict: SessionConflict,
    principal: Principal,
    kind: SessionKind,
    request: LaunchRequest,
    owner: string | null,
    storage: string | null,
    volume: string | null,
    requestHash: string,
  ): Promise<CreatedSession> {
    let winner: Session | null = null;
    if (conflict.reason === 'idempotency') {
      const replay = await this.replay(principal, request.idempotencyKey!, requestHash);
      if (replay) return replay;
    } else if (conflict.reason === 'reuse') {
      winner = await this.sessions.findLiveOf(principal.tenantId, kind, owner, storage);
    } else if (volume) {
      winner = await this.sessions.findLiveByVolume(volume);
      // Held by a session that is stopping (a browser saving its profile): it is free in a moment.
      if (!winner) throw new DomainException(ErrorCode.NotReady, `The ${kind === SessionKind.Browser ? 'profile' : 'workspace'} is being released by a session that is stopping; retry shortly`);
    }
    if (!winner) throw new DomainException(ErrorCode.NotReady, 'A concurrent launch is changing this session; retry');
    return this.handOut(winner, principal, conflict.reason);
  }

  /** The session an Idempotency-Key created; the same key with a different request is refused. */
  private async replay(principal: Principal, key: string, requestHash: string): Promise<CreatedSession | null> {
    const previous = await this.sessions.findByIdempotencyKey(principal.tenantId, key);
    if (!previous) return null;
    if (previous.requestHash !== requestHash) {
      throw new DomainException(ErrorCode.IdempotencyMismatch, 'This Idempotency-Key was used with a different request');
    }
    return this.handOut(previous.session, principal, 'idempotent replay', false);
  }

  /**
   * Gives a caller its own way into an existing session: a fresh access token
   * (tokens are stored hashed, so the first one cannot be shown again).
   * Handing out a live session counts as activity.
   */
  private async handOut(session: Session, principal: Principal, why: string, activity = true): Promise<CreatedSession> {
    const accessToken = generateToken();
    await this.sessions.addAccessToken(session.id, hashToken(accessToken));
    // The new token opens the session as soon as the caller has it (and a pruned one no longer does).
    this.signals.committed({ sessionId: session.id, status: 'tokens' });
    await this.sessions.recordEvent(session.id, 'handed_out', principal.actor, { why });
    const current = activity && isLive(session.status) ? ((await this.sessions.recordActivity([session.id], 'launch'))[0] ?? session) : session;
    this.logger.log({ msg: 'session handed out again', sessionId: session.id, why });
    return { session: current, accessToken, reused: true };
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
      // Left `pending`: the reconciliation gives it a job, or the sweep fails it.
      this.logger.error({ msg: 'could not undo an unconfirmed session', sessionId: id, error: (error as Error).message });
    }
  }

  /** A session of the caller's tenant; with `kind`, only of that kind (the kind's own routes). */
  async get(principal: Principal, id: string, kind?: SessionKind): Promise<Session> {
    const session = await this.sessions.findById(id, { kind, tenantId: principal.tenantId });
    if (!session) throw new DomainException(ErrorCode.SessionNotFound, `No ${kind ?? 'session'} with id ${id}`);
    return session;
  }

  /**
   * Like `get`, but while the session is still `pending`, `starting` or
   * `stopping`, holds the request up to `waitSeconds` for it to move on, so
   * clients learn of the next status at once instead of polling.
   */
  async getWhenSettled(principal: Principal, id: string, kind: SessionKind | undefined, waitSeconds: number): Promise<Session> {
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      const session = await this.get(principal, id, kind);
      const remaining = deadline - Date.now();
      if (!SETTLING.includes(session.status) || remaining <= 0 || this.signals.closing) return session;
      await this.signals.next(id, Math.min(this.signals.pushed ? REREAD_PUSHED_MS : REREAD_POLLED_MS, remaining));
    }
  }

  /** Where a pending session stands in the line for capacity (1: next), or null when it is not waiting. */
  async queuePosition(session: Session): Promise<number | null> {
    if (session.status !== SessionStatus.Pending || this.config.sessions.maxRunning === 0) return null;
    return this.sessions.queuePosition(session);
  }

  list(principal: Principal, query: Omit<ListQuery, 'tenantId'>): Promise<{ items: Session[]; total: number }> {
    return this.sessions.list({ ...query, tenantId: principal.tenantId });
  }

  /**
   * Ends a session: `stopping` at once (the gateway refuses it from that
   * moment), `stopped` once a teardown job has removed its container.
   * Idempotent: ending an ended or ending session returns it unchanged.
   */
  async stop(principal: Principal, id: string, kind?: SessionKind, reason = EndReason.Deleted): Promise<Session> {
    const current = await this.get(principal, id, kind);
    return this.end(current, principal.actor, reason, SessionStatus.Stopped);
  }

  /** Ends every live session of an owner in the caller's tenant. */
  async stopOwner(principal: Principal, owner: string): Promise<Session[]> {
    const live = await this.sessions.liveOfOwner(principal.tenantId, owner);
    return Promise.all(live.map((session) => this.end(session, principal.actor, EndReason.OwnerRemoved, SessionStatus.Stopped)));
  }

  private async end(current: Session, actor: string, reason: EndReason, stopStatus: StopStatus): Promise<Session> {
    if (!isLive(current.status)) return current;
    const stopping = await this.sessions.transition(current.id, SessionStatus.Stopping, { stopStatus, endReason: reason, actor });
    if (!stopping) return (await this.sessions.findById(current.id)) ?? current; // ended concurrently by someone else
    // Its token stops working here and now, not when Postgres' NOTIFY comes back.
    this.signals.committed({ sessionId: current.id, status: SessionStatus.Stopping });
    this.logger.log({ msg: 'session stopping', sessionId: current.id, reason });
    await this.jobs.teardown(current.id).catch((error: Error) => {
      // Already `stopping`: the cleanup sweep retries the removal if this enqueue failed.
      this.logger.warn({ msg: 'teardown not queued; the sweep will remove the container', sessionId: current.id, error: error.message });
    });
    return stopping;
  }

  /** Activity without traffic: the idle deadline moves to now + idle timeout. */
  async heartbeat(principal: Principal, id: string): Promise<Session> {
    const session = await this.sessions.heartbeat(id, principal.tenantId, principal.actor);
    if (session) return session;
    const current = await this.get(principal, id);
    throw new DomainException(ErrorCode.SessionNotLive, `Session ${id} is ${current.status}; it can no longer be kept alive`);
  }

  /**
   * Moves the hard deadline to now + `ttlSeconds`, never beyond
   * MAX_SESSION_LIFETIME_HOURS after the session's creation (it is capped
   * there, and the response shows where it landed), and never earlier than
   * it already is.
   */
  async extend(principal: Principal, id: string, ttlSeconds: number): Promise<Session> {
    const current = await this.get(principal, id);
    if (!isLive(current.status)) throw new DomainException(ErrorCode.SessionNotLive, `Session ${id} is ${current.status}`);
    const cap = current.createdAt.getTime() + this.config.sessions.maxLifetimeSeconds * 1000;
    const target = new Date(Math.min(Date.now() + ttlSeconds * 1000, cap));
    // Extending never shortens: a deadline already later stays (and nothing is recorded).
    if (target <= current.expiresAt) return current;
    const extended = await this.sessions.extend(id, principal.tenantId, target, principal.actor);
    if (!extended) throw new DomainException(ErrorCode.SessionNotLive, `Session ${id} ended meanwhile`);
    await this.jobs.scheduleExpiry(id, extended.expiresAt);
    return extended;
  }

  /** Why the session is alive: its last activity and source, both deadlines, and who extended it. */
  async lifecycle(principal: Principal, id: string): Promise<Lifecycle> {
    const session = await this.get(principal, id);
    const events = await this.sessions.events(id);
    return {
      session,
      idleDeadline:
        session.idleTimeoutSeconds !== null && session.lastActivityAt && isLive(session.status)
          ? new Date(session.lastActivityAt.getTime() + session.idleTimeoutSeconds * 1000)
          : null,
      hardDeadline: session.expiresAt,
      maxDeadline: new Date(session.createdAt.getTime() + this.config.sessions.maxLifetimeSeconds * 1000),
      extensions: events.filter((event) => event.type === 'extended'),
    };
  }

  /** The audit trail of a session of the caller's tenant. */
  async events(principal: Principal, id: string, afterId = 0): Promise<SessionEventRow[]> {
    await this.get(principal, id);
    return this.sessions.events(id, afterId);
  }

  private idleTimeout(requested: number | undefined): number {
    const { defaultSeconds, minSeconds, maxSeconds } = this.config.sessions.idleTimeout;
    const value = requested ?? defaultSeconds;
    if (value < minSeconds || value > maxSeconds) {
      throw new DomainException(ErrorCode.InvalidRequest, `idle_timeout_seconds must be within ${minSeconds}..${maxSeconds}`);
    }
    return value;
  }
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** 0 in configuration means "no limit". */
function limitOf(value: number): number | null {
  return value > 0 ? value : null;
}
