import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { ALLOWED_SOURCES, FINAL_STATUSES, LIVE_STATUSES, SessionKind, SessionStatus } from './session-status';
import { PlatformState, Session } from './session.entity';

export interface NewSession {
  kind: SessionKind;
  image: string;
  platform: string;
  ttlSeconds: number;
  callbackTokenHash: string;
  accessTokenHash: string;
  options: Record<string, unknown>;
  profile: string | null;
  volume: string | null;
}

/** Access tokens kept per session; older ones are dropped when a session is handed out more often. */
export const MAX_ACCESS_TOKENS_PER_SESSION = 32;

/** Columns a transition may set besides the status. */
export interface TransitionPatch {
  errorMessage?: string;
  startedAt?: 'now';
}

/** What the gateway needs to route and authenticate a request; cached in memory. */
export interface SessionRoute {
  id: string;
  kind: SessionKind;
  status: SessionStatus;
  upstreamUrl: string | null;
  /** Hashes of every access token that opens the session. */
  accessTokenHashes: string[];
}

/** Postgres' unique_violation. */
const UNIQUE_VIOLATION = '23505';

/** A live session already holds the profile (the database said so). */
export class ProfileInUse extends Error {
  constructor(readonly profile: string) {
    super(`profile ${profile} is in use by a live session`);
  }
}

export interface ListQuery {
  /** Every kind when absent. */
  kind?: SessionKind;
  status?: SessionStatus;
  limit: number;
  offset: number;
}

const COLUMNS = `id, kind, status, image, platform, platform_state, upstream_url, host_port, container_id, container_name,
  error_message, options, profile, volume, created_at, updated_at, started_at, last_activity_at, expires_at, deleted_at`;

type Row = Record<string, unknown>;

/**
 * All SQL about sessions. Every status change goes through `transition`, a
 * single conditional UPDATE, so concurrent workers and API replicas agree on
 * the outcome without locks: exactly one of two racing writers sees a row.
 */
@Injectable()
export class SessionsRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /**
   * Inserts a pending session and its first access token in one statement.
   * A live session already holding the profile makes it fail with
   * `ProfileInUse` (the partial unique index decides, not a prior read).
   */
  async create(input: NewSession): Promise<Session> {
    try {
      const rows: Row[] = await this.dataSource.query(
        `WITH created AS (
           INSERT INTO sessions (kind, status, image, platform, callback_token_hash, options, profile, volume, expires_at)
           VALUES ($1, 'pending', $2, $3, $4, $5::jsonb, $6, $7, now() + make_interval(secs => $8))
           RETURNING ${COLUMNS}
         ), token AS (
           INSERT INTO session_access_tokens (token_hash, session_id) SELECT $9, id FROM created
         )
         SELECT * FROM created`,
        [
          input.kind,
          input.image,
          input.platform,
          input.callbackTokenHash,
          JSON.stringify(input.options),
          input.profile,
          input.volume,
          input.ttlSeconds,
          input.accessTokenHash,
        ],
      );
      return toSession(rows[0]);
    } catch (error) {
      const { code, constraint } = error as { code?: string; constraint?: string };
      if (code === UNIQUE_VIOLATION && constraint === 'UQ_sessions_live_profile') throw new ProfileInUse(input.profile!);
      throw error;
    }
  }

  /** Another way in to a session: a new access token, the oldest dropped beyond MAX_ACCESS_TOKENS_PER_SESSION. */
  async addAccessToken(sessionId: string, tokenHash: string): Promise<void> {
    await this.dataSource.query(
      `WITH added AS (INSERT INTO session_access_tokens (token_hash, session_id) VALUES ($2, $1))
       DELETE FROM session_access_tokens WHERE token_hash IN (
         SELECT token_hash FROM session_access_tokens WHERE session_id = $1 ORDER BY created_at DESC OFFSET $3)`,
      [sessionId, tokenHash, MAX_ACCESS_TOKENS_PER_SESSION - 1],
    );
  }

  /** The live session holding a profile, if any. */
  async findLiveByProfile(profile: string): Promise<Session | null> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM sessions WHERE profile = $1 AND status = ANY($2::varchar[])`,
      [profile, LIVE_STATUSES],
    );
    return rows.length ? toSession(rows[0]) : null;
  }

  /** Removes a row whose creation could not be completed (its job could not be queued). */
  async deletePending(id: string): Promise<boolean> {
    const result = (await this.dataSource.query(`DELETE FROM sessions WHERE id = $1 AND status = 'pending'`, [id])) as [unknown[], number];
    return result[1] === 1;
  }

  async findById(id: string, kind?: SessionKind): Promise<Session | null> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM sessions WHERE id = $1 AND ($2::varchar IS NULL OR kind = $2)`,
      [id, kind ?? null],
    );
    return rows.length ? toSession(rows[0]) : null;
  }

  async findCallbackTokenHash(id: string): Promise<string | null> {
    const rows: Row[] = await this.dataSource.query(`SELECT callback_token_hash FROM sessions WHERE id = $1`, [id]);
    return rows.length ? (rows[0].callback_token_hash as string) : null;
  }

  async list(query: ListQuery): Promise<{ items: Session[]; total: number }> {
    const params = [query.kind ?? null, query.status ?? null];
    const where = `($1::varchar IS NULL OR kind = $1) AND ($2::varchar IS NULL OR status = $2)`;
    const [rows, count] = await Promise.all([
      this.dataSource.query(
        `SELECT ${COLUMNS} FROM sessions WHERE ${where} ORDER BY created_at DESC, id LIMIT $3 OFFSET $4`,
        [...params, query.limit, query.offset],
      ) as Promise<Row[]>,
      this.dataSource.query(`SELECT count(*)::int AS total FROM sessions WHERE ${where}`, params) as Promise<Row[]>,
    ]);
    return { items: rows.map(toSession), total: count[0].total as number };
  }

  /**
   * Moves a session to `to` if, and only if, it is currently in one of the
   * states `to` may be entered from. Returns the updated row, or null when
   * the session was not in such a state (someone else got there first).
   */
  async transition(id: string, to: SessionStatus, patch: TransitionPatch = {}, extraCondition?: 'expired'): Promise<Session | null> {
    const sets = ['status = $2', 'updated_at = now()'];
    const params: unknown[] = [id, to, ALLOWED_SOURCES[to]];
    if (patch.errorMessage !== undefined) {
      params.push(patch.errorMessage.slice(0, 1024));
      sets.push(`error_message = $${params.length}`);
    }
    if (patch.startedAt) sets.push('started_at = now()', 'last_activity_at = now()');
    // Leaving the live states is the moment the session ended.
    if ((FINAL_STATUSES as readonly SessionStatus[]).includes(to)) sets.push('deleted_at = now()');
    let condition = extraCondition === 'expired' ? 'AND expires_at <= now()' : '';
    // A session is only `started` once the gateway knows where to reach it.
    if (to === SessionStatus.Started) condition += ' AND upstream_url IS NOT NULL';
    const result = (await this.dataSource.query(
      `UPDATE sessions SET ${sets.join(', ')} WHERE id = $1 AND status = ANY($3::varchar[]) ${condition} RETURNING ${COLUMNS}`,
      params,
    )) as [Row[], number];
    const rows = result[0];
    return rows.length ? toSession(rows[0]) : null;
  }

  /** Records where the container is; only while the session may still own one. */
  async recordContainer(id: string, containerId: string, containerName: string, state: PlatformState): Promise<boolean> {
    const result = (await this.dataSource.query(
      `UPDATE sessions SET container_id = $2, container_name = $3, platform_state = $4::jsonb, updated_at = now()
       WHERE id = $1 AND status IN ('starting', 'started')`,
      [id, containerId, containerName, JSON.stringify(state)],
    )) as [unknown[], number];
    return result[1] === 1;
  }

  /**
   * Records where the gateway reaches the session's agent, as the platform
   * assigned it: before the container starts when the platform knows it up
   * front, else as soon as `poll` reports it (a pod's IP).
   */
  async recordUpstream(id: string, upstreamUrl: string): Promise<boolean> {
    const result = (await this.dataSource.query(
      `UPDATE sessions SET upstream_url = $2, updated_at = now() WHERE id = $1 AND status = 'starting'`,
      [id, upstreamUrl],
    )) as [unknown[], number];
    return result[1] === 1;
  }

  /**
   * Gives a starting session a host port from `range`, or returns the one it
   * already has (a re-delivered job). The partial unique index on host_port is
   * what makes two live sessions sharing a port impossible, across workers:
   * a collision is a unique violation, and another random port is tried.
   */
  async assignHostPort(id: string, range: { min: number; max: number }): Promise<number> {
    const span = range.max - range.min + 1;
    for (let attempt = 0; attempt < 32; attempt++) {
      const candidate = range.min + Math.floor(Math.random() * span);
      try {
        const result = (await this.dataSource.query(
          `UPDATE sessions SET host_port = COALESCE(host_port, $2) WHERE id = $1 AND status = 'starting' RETURNING host_port`,
          [id, candidate],
        )) as [Row[], number];
        if (result[0].length === 0) throw new Error(`session ${id} is no longer starting`);
        return result[0][0].host_port as number;
      } catch (error) {
        if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
      }
    }
    throw new Error(`no free port in ${range.min}-${range.max} after 32 attempts; widen SESSION_PORT_RANGE`);
  }

  /** The container is gone: its host port may be handed out again. */
  async releaseHostPort(id: string): Promise<void> {
    await this.dataSource.query(
      `UPDATE sessions SET host_port = NULL WHERE id = $1 AND host_port IS NOT NULL AND status <> ALL($2::varchar[])`,
      [id, LIVE_STATUSES],
    );
  }

  /** One statement for every session the gateway saw traffic for since the last flush. */
  async recordActivity(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.dataSource.query(`UPDATE sessions SET last_activity_at = now() WHERE id = ANY($1::uuid[]) AND status = 'started'`, [ids]);
  }

  async findRoute(id: string): Promise<SessionRoute | null> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT s.id, s.kind, s.status, s.upstream_url,
              COALESCE(array_agg(t.token_hash) FILTER (WHERE t.token_hash IS NOT NULL), '{}') AS token_hashes
       FROM sessions s LEFT JOIN session_access_tokens t ON t.session_id = s.id
       WHERE s.id = $1 GROUP BY s.id`,
      [id],
    );
    if (rows.length === 0) return null;
    const row = rows[0];
    return {
      id: row.id as string,
      kind: row.kind as SessionKind,
      status: row.status as SessionStatus,
      upstreamUrl: (row.upstream_url as string) ?? null,
      accessTokenHashes: row.token_hashes as string[],
    };
  }

  /** Statuses of the given sessions, for re-checking open connections after a missed notification. */
  async statuses(ids: string[]): Promise<Map<string, SessionStatus>> {
    if (ids.length === 0) return new Map();
    const rows: Row[] = await this.dataSource.query(`SELECT id, status FROM sessions WHERE id = ANY($1::uuid[])`, [ids]);
    return new Map(rows.map((row) => [row.id as string, row.status as SessionStatus]));
  }

  /** Ends every live session whose TTL has passed; returns them for teardown. */
  async expireDue(): Promise<Session[]> {
    const result = (await this.dataSource.query(
      `UPDATE sessions SET status = 'expired', updated_at = now(), deleted_at = now()
       WHERE status = ANY($1::varchar[]) AND expires_at <= now()
       RETURNING ${COLUMNS}`,
      [LIVE_STATUSES],
    )) as [Row[], number];
    return result[0].map(toSession);
  }

  /** Fails sessions that have not reached `started` within the start timeout; returns them for teardown. */
  async failStuck(startTimeoutSeconds: number): Promise<Session[]> {
    const result = (await this.dataSource.query(
      `UPDATE sessions SET status = 'failed', updated_at = now(), deleted_at = now(), error_message = $2
       WHERE status IN ('pending', 'starting') AND created_at <= now() - make_interval(secs => $1)
       RETURNING ${COLUMNS}`,
      [startTimeoutSeconds, `did not start within ${startTimeoutSeconds} s`],
    )) as [Row[], number];
    return result[0].map(toSession);
  }

  /** Sessions whose container should be running: what the sweep checks against the platform. */
  async findStarted(): Promise<Session[]> {
    const rows: Row[] = await this.dataSource.query(`SELECT ${COLUMNS} FROM sessions WHERE status = 'started'`);
    return rows.map(toSession);
  }

  async liveIds(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows: Row[] = await this.dataSource.query(
      `SELECT id FROM sessions WHERE id = ANY($1::uuid[]) AND status = ANY($2::varchar[])`,
      [ids, LIVE_STATUSES],
    );
    return new Set(rows.map((row) => row.id as string));
  }
}

function toDate(value: unknown): Date | null {
  return value === null || value === undefined ? null : new Date(value as string);
}

function toSession(row: Row): Session {
  const session = new Session();
  session.id = row.id as string;
  session.kind = row.kind as SessionKind;
  session.status = row.status as SessionStatus;
  session.image = row.image as string;
  session.platform = row.platform as string;
  session.platformState = (row.platform_state as PlatformState) ?? {};
  session.upstreamUrl = (row.upstream_url as string) ?? null;
  session.hostPort = (row.host_port as number) ?? null;
  session.containerId = (row.container_id as string) ?? null;
  session.containerName = (row.container_name as string) ?? null;
  session.errorMessage = (row.error_message as string) ?? null;
  session.options = (row.options as Record<string, unknown>) ?? {};
  session.profile = (row.profile as string) ?? null;
  session.volume = (row.volume as string) ?? null;
  session.createdAt = toDate(row.created_at) as Date;
  session.updatedAt = toDate(row.updated_at) as Date;
  session.startedAt = toDate(row.started_at);
  session.lastActivityAt = toDate(row.last_activity_at);
  session.expiresAt = toDate(row.expires_at) as Date;
  session.deletedAt = toDate(row.deleted_at);
  return session;
}
