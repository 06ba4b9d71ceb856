import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { rowsOf } from '../database/rows';
import { ALLOWED_SOURCES, EndReason, FINAL_STATUSES, HOLDING_STATUSES, LIVE_STATUSES, SessionKind, SessionStatus, StopStatus } from './session-status';
import { PlatformState, Session } from './session.entity';

export interface NewSession {
  tenantId: string;
  kind: SessionKind;
  image: string;
  platform: string;
  ttlSeconds: number;
  accessTokenHash: string;
  options: Record<string, unknown>;
  owner: string | null;
  workspace: string | null;
  profile: string | null;
  volume: string | null;
  /** Set when the launch asked to reuse a live session: at most one live session per key. */
  reuseKey: string | null;
  idleTimeoutSeconds: number | null;
  /** Who launched it, for the audit trail. */
  actor: string;
}

/** Limits checked in the same transaction as the insert, under the tenant's row lock. */
export interface Quotas {
  perTenant: number | null;
  perOwner: number | null;
}

/** Access tokens kept per session; older ones are dropped when a session is handed out more often. */
export const MAX_ACCESS_TOKENS_PER_SESSION = 32;

/** Columns a transition may set besides the status, and who made it (for the audit trail). */
export interface TransitionPatch {
  errorMessage?: string;
  startedAt?: 'now';
  /** Entering `stopping`: the status it ends in once the container is gone, and why. */
  stopStatus?: StopStatus;
  endReason?: EndReason;
  actor?: string;
  /** Extra facts for the event this transition records. */
  event?: Record<string, unknown>;
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

/** Advisory lock serialising admissions under MAX_RUNNING_SESSIONS ("admi"). */
const ADMISSION_LOCK = 0x61646d69;

/** The database refused the insert because another live session holds what this one needs. */
export class SessionConflict extends Error {
  constructor(
    readonly reason: 'volume' | 'reuse' | 'idempotency',
    message: string,
  ) {
    super(message);
  }
}

export class QuotaExceeded extends Error {
  constructor(
    readonly scope: 'tenant' | 'owner',
    readonly limit: number,
  ) {
    super(`${scope} quota of ${limit} live sessions reached`);
  }
}

export interface ListQuery {
  tenantId: string;
  /** Every kind when absent. */
  kind?: SessionKind;
  status?: SessionStatus;
  owner?: string;
  limit: number;
  offset: number;
}

export interface SessionEventRow {
  id: number;
  sessionId: string;
  tenantId: string;
  type: string;
  actor: string;
  data: Record<string, unknown>;
  createdAt: Date;
}

export const SESSION_COLUMNS = `id, tenant_id, kind, status, pool_variant, image, platform, platform_state, upstream_url, host_port, container_id, container_name,
  error_message, options, owner, workspace, profile, volume, idle_timeout_seconds, last_activity_source, stop_status, end_reason,
  removal_error, admitted_at, created_at, updated_at, started_at, last_activity_at, expires_at, deleted_at`;

/**
 * Records one event per changed row, in the statement that changed it (so
 * the trail never misses one). A pool container no launch has claimed has
 * no tenant, hence no audience: its trail starts at the claim.
 */
const EVENT_PER_ROW = (type: string, actor: string, data: string) =>
  `ev AS (INSERT INTO session_events (session_id, tenant_id, type, actor, data)
          SELECT id, tenant_id, ${type}, ${actor}, ${data} FROM changed WHERE tenant_id IS NOT NULL)`;

type Row = Record<string, unknown>;

/**
 * All SQL about sessions. Every status change goes through `transition` (or
 * a bulk equivalent), a single conditional UPDATE that also appends the
 * event to the audit trail, so concurrent workers and API replicas agree on
 * the outcome without locks: exactly one of two racing writers sees a row.
 */
@Injectable()
export class SessionsRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /**
   * Inserts a pending session and its first access token in one
   * transaction, after checking the quotas under the tenant's row lock (so
   * concurrent launches cannot overshoot). With `poolVariant`, a warm pool
   * container of that variant becomes the session instead (`starting`,
   * to be bound), when there is one. The partial unique indexes decide
   * conflicts: a held volume or reuse key is a SessionConflict, as is an
   * Idempotency-Key that was used before.
   */
  async create(input: NewSession, quotas: Quotas, idempotency?: { key: string; requestHash: string }, poolVariant?: string | null): Promise<Session> {
    try {
      return await this.dataSource.transaction(async (manager) => {
        await this.checkQuotas(manager, input, quotas);
        const claimed = poolVariant ? await this.claimWarm(manager, input, poolVariant) : null;
        const rows: Row[] = claimed ? [claimed] : await manager.query(
          `WITH created AS (
             INSERT INTO sessions (tenant_id, kind, status, image, platform, options, owner, workspace,
                                   profile, volume, reuse_key, idle_timeout_seconds, expires_at)
             VALUES ($1, $2, 'pending', $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, now() + make_interval(secs => $12))
             RETURNING ${SESSION_COLUMNS}
           ), token AS (
             INSERT INTO session_access_tokens (token_hash, session_id) SELECT $13, id FROM created
           ), ev AS (
             INSERT INTO session_events (session_id, tenant_id, type, actor, data)
             SELECT id, tenant_id, 'created', $14, jsonb_build_object('kind', kind, 'owner', owner, 'expires_at', expires_at) FROM created
           )
           SELECT * FROM created`,
          [
            input.tenantId,
            input.kind,
            input.image,
            input.platform,
            JSON.stringify(input.options),
            input.owner,
            input.workspace,
            input.profile,
            input.volume,
            input.reuseKey,
            input.idleTimeoutSeconds,
            input.ttlSeconds,
            input.accessTokenHash,
            input.actor,
          ],
        );
        const session = toSession(rows[0]);
        if (idempotency) {
          await manager.query(`INSERT INTO idempotency_keys (tenant_id, key, session_id, request_hash) VALUES ($1, $2, $3, $4)`, [
            input.tenantId,
            idempotency.key,
            session.id,
            idempotency.requestHash,
          ]);
        }
        return session;
      });
    } catch (error) {
      const { code, constraint } = error as { code?: string; constraint?: string };
      if (code !== UNIQUE_VIOLATION) throw error;
      if (constraint === 'UQ_sessions_holding_volume') throw new SessionConflict('volume', 'another session holds this profile or workspace');
      if (constraint === 'UQ_sessions_live_reuse_key') throw new SessionConflict('reuse', 'a live session for this owner exists');
      if (constraint === 'PK_idempotency_keys') throw new SessionConflict('idempotency', 'this Idempotency-Key was used before');
      throw error;
    }
  }

  /**
   * Hands the oldest warm container of the variant to this launch: one
   * statement, the row locked with SKIP LOCKED, so concurrent launches on any
   * API replica each get a different container (or none, and start cold).
   * The row becomes the session's: tenant, owner, options, deadlines, its
   * first access token and the `created` event. It is `starting` until the
   * container is bound (SessionsService).
   */
  private async claimWarm(manager: EntityManager, input: NewSession, variant: string): Promise<Row | null> {
    const rows: Row[] = await manager.query(
      `WITH claimed AS (
         UPDATE sessions SET tenant_id = $1, status = 'starting', options = $5::jsonb, owner = $6, reuse_key = $7,
                idle_timeout_seconds = $8, created_at = now(), admitted_at = now(), updated_at = now(),
                expires_at = now() + make_interval(secs => $9)
         WHERE id = (SELECT id FROM sessions
                     WHERE status = 'warm' AND pool_variant = $10 AND kind = $2 AND image = $3 AND platform = $4
                       AND expires_at > now() + interval '5 seconds'
                     ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
           AND status = 'warm'
         RETURNING ${SESSION_COLUMNS}
       ), token AS (
         INSERT INTO session_access_tokens (token_hash, session_id) SELECT $11, id FROM claimed
       ), ev AS (
         INSERT INTO session_events (session_id, tenant_id, type, actor, data)
         SELECT id, tenant_id, 'created', $12, jsonb_build_object('kind', kind, 'owner', owner, 'expires_at', expires_at, 'pool', pool_variant) FROM claimed
       )
       SELECT * FROM claimed`,
      [
        input.tenantId,
        input.kind,
        input.image,
        input.platform,
        JSON.stringify(input.options),
        input.owner,
        input.reuseKey,
        input.idleTimeoutSeconds,
        input.ttlSeconds,
        variant,
        input.accessTokenHash,
        input.actor,
      ],
    );
    return rows[0] ?? null;
  }

  /**
   * Counts the tenant's (and owner's) live sessions under the tenant's row
   * lock, so concurrent launches cannot overshoot. Without quotas there is
   * nothing to count and no lock to take: launches of one tenant run in parallel.
   */
  private async checkQuotas(manager: EntityManager, input: NewSession, quotas: Quotas): Promise<void> {
    if (quotas.perTenant === null && (quotas.perOwner === null || !input.owner)) return;
    await manager.query(`SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, [input.tenantId]);
    const [counts]: Row[] = await manager.query(
      `SELECT count(*)::int AS tenant, count(*) FILTER (WHERE owner = $2)::int AS owner
       FROM sessions WHERE tenant_id = $1 AND status = ANY($3::varchar[])`,
      [input.tenantId, input.owner, LIVE_STATUSES],
    );
    if (quotas.perTenant !== null && (counts.tenant as number) >= quotas.perTenant) throw new QuotaExceeded('tenant', quotas.perTenant);
    if (quotas.perOwner !== null && input.owner && (counts.owner as number) >= quotas.perOwner) throw new QuotaExceeded('owner', quotas.perOwner);
  }

  /** The session an Idempotency-Key created, and the hash of the request that created it. */
  async findByIdempotencyKey(tenantId: string, key: string): Promise<{ session: Session; requestHash: string } | null> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT ${SESSION_COLUMNS.split(',').map((column) => `s.${column.trim()}`).join(', ')}, k.request_hash AS idempotency_request_hash
       FROM idempotency_keys k JOIN sessions s ON s.id = k.session_id WHERE k.tenant_id = $1 AND k.key = $2`,
      [tenantId, key],
    );
    return rows.length ? { session: toSession(rows[0]), requestHash: rows[0].idempotency_request_hash as string } : null;
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

  /** The live session holding a volume (a profile, a workspace), if any. */
  async findLiveByVolume(volume: string): Promise<Session | null> {
    return this.findOneWhere(`volume = $1 AND status = ANY($2::varchar[])`, [volume, LIVE_STATUSES]);
  }

  /** The oldest live session of this tenant, kind, owner and storage (workspace or profile), if any. */
  async findLiveOf(tenantId: string, kind: SessionKind, owner: string | null, storage: string | null): Promise<Session | null> {
    return this.findOneWhere(
      `tenant_id = $1 AND kind = $2 AND owner IS NOT DISTINCT FROM $3
       AND COALESCE(workspace, profile) IS NOT DISTINCT FROM $4 AND status = ANY($5::varchar[])
       ORDER BY created_at LIMIT 1`,
      [tenantId, kind, owner, storage, LIVE_STATUSES],
    );
  }

  /** Removes a row whose creation could not be completed (its job could not be queued). */
  async deletePending(id: string): Promise<boolean> {
    const result = (await this.dataSource.query(`DELETE FROM sessions WHERE id = $1 AND status = 'pending'`, [id])) as [unknown[], number];
    return result[1] === 1;
  }

  /** A session by id; `kind` and `tenantId` narrow it (another tenant's session is simply not found). */
  async findById(id: string, scope: { kind?: SessionKind; tenantId?: string } = {}): Promise<Session | null> {
    return this.findOneWhere(`id = $1 AND ($2::varchar IS NULL OR kind = $2) AND ($3::uuid IS NULL OR tenant_id = $3)`, [
      id,
      scope.kind ?? null,
      scope.tenantId ?? null,
    ]);
  }

  async list(query: ListQuery): Promise<{ items: Session[]; total: number }> {
    const params = [query.tenantId, query.kind ?? null, query.status ?? null, query.owner ?? null];
    const where = `tenant_id = $1 AND ($2::varchar IS NULL OR kind = $2) AND ($3::varchar IS NULL OR status = $3) AND ($4::varchar IS NULL OR owner = $4)`;
    const [rows, count] = await Promise.all([
      this.dataSource.query(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE ${where} ORDER BY created_at DESC, id LIMIT $5 OFFSET $6`, [
        ...params,
        query.limit,
        query.offset,
      ]) as Promise<Row[]>,
      this.dataSource.query(`SELECT count(*)::int AS total FROM sessions WHERE ${where}`, params) as Promise<Row[]>,
    ]);
    return { items: rows.map(toSession), total: count[0].total as number };
  }

  /** Live sessions of one owner in a tenant (for removal by owner). */
  async liveOfOwner(tenantId: string, owner: string): Promise<Session[]> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT ${SESSION_COLUMNS} FROM sessions WHERE tenant_id = $1 AND owner = $2 AND status = ANY($3::varchar[]) ORDER BY created_at`,
      [tenantId, owner, LIVE_STATUSES],
    );
    return rows.map(toSession);
  }

  /**
   * Moves a session to `to` if, and only if, it is currently in one of the
   * states `to` may be entered from, and records the event. Returns the
   * updated row, or null when the session was not in such a state (someone
   * else got there first).
   */
  async transition(
    id: string,
    to: SessionStatus,
    patch: TransitionPatch = {},
    extraCondition?: 'expired' | 'idle',
    manager: EntityManager = this.dataSource.manager,
  ): Promise<Session | null> {
    const sets = ['status = $2', 'updated_at = now()'];
    const params: unknown[] = [id, to, ALLOWED_SOURCES[to], patch.actor ?? 'system'];
    const event: Record<string, unknown> = { ...patch.event };
    if (patch.errorMessage !== undefined) {
      params.push(patch.errorMessage.slice(0, 1024));
      sets.push(`error_message = $${params.length}`);
      event.error = patch.errorMessage.slice(0, 1024);
    }
    if (patch.startedAt) sets.push('started_at = now()', 'last_activity_at = now()', `last_activity_source = 'start'`);
    if (to === SessionStatus.Starting) sets.push('admitted_at = COALESCE(admitted_at, now())');
    if (to === SessionStatus.Stopping) {
      params.push(patch.stopStatus ?? SessionStatus.Stopped, patch.endReason ?? EndReason.Deleted);
      sets.push(`stop_status = $${params.length - 1}`, `end_reason = $${params.length}`, 'deleted_at = now()');
      event.reason = patch.endReason ?? EndReason.Deleted;
    }
    if (to === SessionStatus.Failed) sets.push(`end_reason = 'failed'`, 'deleted_at = now()');
    let condition = '';
    if (extraCondition === 'expired') condition = 'AND expires_at <= now()';
    if (extraCondition === 'idle') condition = `AND status = 'started' AND last_activity_at + make_interval(secs => idle_timeout_seconds) <= now()`;
    // A session is only `started` once the gateway knows where to reach it.
    if (to === SessionStatus.Started) condition += ' AND upstream_url IS NOT NULL';
    params.push(JSON.stringify(event));
    const rows: Row[] = await manager.query(
      `WITH changed AS (
         UPDATE sessions SET ${sets.join(', ')} WHERE id = $1 AND status = ANY($3::varchar[]) ${condition} RETURNING ${SESSION_COLUMNS}
       ), ${EVENT_PER_ROW('$2', '$4', `$${params.length}::jsonb`)}
       SELECT * FROM changed`,
      params,
    );
    return rows.length ? toSession(rows[0]) : null;
  }

  /**
   * The container is gone: a `stopping` session reaches the status it was
   * stopping towards, its host port is free again, and a removal error
   * recorded on an earlier attempt is cleared.
   */
  async completeStop(id: string): Promise<Session | null> {
    const rows: Row[] = await this.dataSource.query(
      `WITH changed AS (
         UPDATE sessions SET status = stop_status, host_port = NULL, removal_error = NULL, updated_at = now()
         WHERE id = $1 AND status = 'stopping' RETURNING ${SESSION_COLUMNS}
       ), ${EVENT_PER_ROW('changed.status', `'system'`, `jsonb_build_object('reason', changed.end_reason)`)}
       SELECT * FROM changed`,
      [id],
    );
    return rows.length ? toSession(rows[0]) : null;
  }

  /** A removal failed: visible on the session until a retry succeeds. */
  async recordRemovalError(id: string, message: string): Promise<void> {
    await this.dataSource.query(`UPDATE sessions SET removal_error = $2, updated_at = now() WHERE id = $1 AND status = 'stopping'`, [
      id,
      message.slice(0, 1024),
    ]);
  }

  /** Records where the container is; only while the session may still own one. */
  async recordContainer(id: string, containerId: string, containerName: string, state: PlatformState): Promise<boolean> {
    const result = (await this.dataSource.query(
      `UPDATE sessions SET container_id = $2, container_name = $3, platform_state = $4::jsonb, updated_at = now()
       WHERE id = $1 AND status IN ('warming', 'starting', 'started')`,
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
      `UPDATE sessions SET upstream_url = $2, updated_at = now() WHERE id = $1 AND status IN ('warming', 'starting')`,
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
          `UPDATE sessions SET host_port = COALESCE(host_port, $2) WHERE id = $1 AND status IN ('warming', 'starting') RETURNING host_port`,
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
      [id, HOLDING_STATUSES],
    );
  }

  /** One statement for every session that saw traffic (gateway) or a heartbeat since the last flush. */
  async recordActivity(ids: string[], source: 'gateway' | 'heartbeat' | 'launch'): Promise<Session[]> {
    if (ids.length === 0) return [];
    const rows = rowsOf<Row>(await this.dataSource.query(
      `UPDATE sessions SET last_activity_at = now(), last_activity_source = $2
       WHERE id = ANY($1::uuid[]) AND status = ANY($3::varchar[]) RETURNING ${SESSION_COLUMNS}`,
      [ids, source, LIVE_STATUSES],
    ));
    return rows.map(toSession);
  }

  /** Moves the hard deadline, never beyond `maxExpiresAt`; records who did it. */
  async extend(id: string, tenantId: string, expiresAt: Date, actor: string): Promise<Session | null> {
    const rows: Row[] = await this.dataSource.query(
      `WITH before AS (SELECT expires_at FROM sessions WHERE id = $1 AND tenant_id = $2),
       changed AS (
         UPDATE sessions SET expires_at = $3, updated_at = now()
         WHERE id = $1 AND tenant_id = $2 AND status = ANY($4::varchar[]) RETURNING ${SESSION_COLUMNS}
       ), ${EVENT_PER_ROW(`'extended'`, '$5', `jsonb_build_object('from', (SELECT expires_at FROM before), 'to', changed.expires_at)`)}
       SELECT * FROM changed`,
      [id, tenantId, expiresAt, LIVE_STATUSES, actor],
    );
    return rows.length ? toSession(rows[0]) : null;
  }

  /** Appends an event that is not a status change (handed out, heartbeat, queued, a start-up phase, expiring soon). */
  async recordEvent(sessionId: string, type: string, actor: string, data: Record<string, unknown> = {}, onlyIf?: SessionStatus): Promise<void> {
    // With `onlyIf`, the row is locked while the event is added: a status change
    // racing it lands either before (no event) or after (a later event id).
    await this.dataSource.query(
      `INSERT INTO session_events (session_id, tenant_id, type, actor, data)
       SELECT id, tenant_id, $2, $3, $4::jsonb FROM sessions
       WHERE id = $1 AND tenant_id IS NOT NULL ${onlyIf ? 'AND status = $5 FOR UPDATE' : ''}`,
      onlyIf ? [sessionId, type, actor, JSON.stringify(data), onlyIf] : [sessionId, type, actor, JSON.stringify(data)],
    );
  }

  /** Appends an event unless one of this type with the same data exists (a warning per deadline, not per check). */
  async recordEventOnce(sessionId: string, type: string, data: Record<string, unknown>): Promise<boolean> {
    const rows: Row[] = await this.dataSource.query(
      `INSERT INTO session_events (session_id, tenant_id, type, actor, data)
       SELECT id, tenant_id, $2::varchar, 'system', $3::jsonb FROM sessions
       WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM session_events WHERE session_id = $1 AND type = $2::varchar AND data = $3::jsonb)
       RETURNING id`,
      [sessionId, type, JSON.stringify(data)],
    );
    return rows.length === 1;
  }

  /**
   * A heartbeat: activity now, and (at most once a minute per actor, so a
   * chatty client does not flood the trail) an event saying who kept it alive.
   */
  async heartbeat(id: string, tenantId: string, actor: string): Promise<Session | null> {
    const rows: Row[] = await this.dataSource.query(
      `WITH changed AS (
         UPDATE sessions SET last_activity_at = now(), last_activity_source = 'heartbeat'
         WHERE id = $1 AND tenant_id = $2 AND status = ANY($3::varchar[]) RETURNING ${SESSION_COLUMNS}
       ), ev AS (
         INSERT INTO session_events (session_id, tenant_id, type, actor)
         SELECT id, tenant_id, 'heartbeat', $4::varchar FROM changed
         WHERE NOT EXISTS (SELECT 1 FROM session_events e WHERE e.session_id = $1 AND e.type = 'heartbeat' AND e.actor = $4::varchar
                           AND e.created_at > now() - interval '60 seconds')
       )
       SELECT * FROM changed`,
      [id, tenantId, LIVE_STATUSES, actor],
    );
    return rows.length ? toSession(rows[0]) : null;
  }

  async events(sessionId: string, afterId = 0, limit = 500): Promise<SessionEventRow[]> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT id, session_id, tenant_id, type, actor, data, created_at FROM session_events
       WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
      [sessionId, afterId, limit],
    );
    return rows.map(toEvent);
  }

  async eventById(id: number): Promise<SessionEventRow | null> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT id, session_id, tenant_id, type, actor, data, created_at FROM session_events WHERE id = $1`,
      [id],
    );
    return rows.length ? toEvent(rows[0]) : null;
  }

  /**
   * Takes a pending session to `starting` if capacity allows (MAX_RUNNING_SESSIONS,
   * which the warm pool's containers count toward): sessions are admitted in
   * arrival order, as many as there are free slots.
   * Serialised by an advisory lock, so replicas admitting at once cannot
   * overshoot. 'queued': it waits; null: it is no longer pending.
   */
  async admit(id: string, capacity: number): Promise<Session | 'queued' | null> {
    if (capacity === 0) return this.transition(id, SessionStatus.Starting);
    return this.dataSource.transaction(async (manager) => {
      await manager.query(`SELECT pg_advisory_xact_lock($1)`, [ADMISSION_LOCK]);
      const rows: Row[] = await manager.query(
        `SELECT me.status,
                (SELECT count(*) FROM sessions r WHERE r.platform = me.platform
                   AND r.status IN ('warming', 'warm', 'starting', 'started', 'stopping'))::int AS running,
                (SELECT count(*) FROM sessions p WHERE p.platform = me.platform AND p.status = 'pending'
                   AND (p.created_at, p.id) < (me.created_at, me.id))::int AS ahead
         FROM sessions me WHERE me.id = $1`,
        [id],
      );
      if (!rows.length) return null;
      const { status, running, ahead } = rows[0] as { status: SessionStatus; running: number; ahead: number };
      // A re-delivered job of a session already admitted keeps its slot.
      if (status === SessionStatus.Pending && running + ahead >= capacity) return 'queued';
      return this.transition(id, SessionStatus.Starting, { actor: 'worker' }, undefined, manager);
    });
  }

  /** Sessions `pending` for at least `seconds`, oldest first: each should have a provisioning job by now. */
  async pendingSince(seconds: number, limit: number): Promise<string[]> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT id FROM sessions WHERE status = 'pending' AND created_at <= now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2`,
      [seconds, limit],
    );
    return rows.map((row) => row.id as string);
  }

  /** Pending sessions waiting for capacity, oldest first (to wake as slots free). */
  async oldestPending(platform: string, limit: number): Promise<string[]> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT id FROM sessions WHERE status = 'pending' AND platform = $1 ORDER BY created_at, id LIMIT $2`,
      [platform, limit],
    );
    return rows.map((row) => row.id as string);
  }

  /** Idempotency keys are kept a day: long enough for any client's retries. */
  async forgetIdempotencyKeys(olderThanSeconds: number): Promise<number> {
    const result = (await this.dataSource.query(`DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)`, [
      olderThanSeconds,
    ])) as [unknown[], number];
    return result[1];
  }

  /** A pending session's place in the line for capacity: 1 is next. */
  async queuePosition(session: Session): Promise<number> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT count(*)::int AS ahead FROM sessions WHERE status = 'pending' AND platform = $1 AND (created_at, id) < ($2, $3)`,
      [session.platform, session.createdAt, session.id],
    );
    return (rows[0].ahead as number) + 1;
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

  /** Ends every live session whose TTL has passed (stopping, then expired once the container is gone). */
  async expireDue(): Promise<Session[]> {
    return this.stopWhere(`status = ANY($1::varchar[]) AND expires_at <= now()`, [LIVE_STATUSES], SessionStatus.Expired, EndReason.Ttl);
  }

  /** Ends every started session idle past its idle timeout. */
  async stopIdle(): Promise<Session[]> {
    return this.stopWhere(
      `status = 'started' AND idle_timeout_seconds IS NOT NULL AND last_activity_at + make_interval(secs => idle_timeout_seconds) <= now()`,
      [],
      SessionStatus.Stopped,
      EndReason.Idle,
    );
  }

  private async stopWhere(where: string, params: unknown[], stopStatus: StopStatus, reason: EndReason): Promise<Session[]> {
    const n = params.length;
    const rows: Row[] = await this.dataSource.query(
      `WITH changed AS (
         UPDATE sessions SET status = 'stopping', stop_status = $${n + 1}, end_reason = $${n + 2}, updated_at = now(), deleted_at = now()
         WHERE ${where} RETURNING ${SESSION_COLUMNS}
       ), ${EVENT_PER_ROW(`'stopping'`, `'system'`, `jsonb_build_object('reason', $${n + 2}::varchar)`)}
       SELECT * FROM changed`,
      [...params, stopStatus, reason],
    );
    return rows.map(toSession);
  }

  /**
   * Fails sessions that have not reached `started` within the start timeout
   * (waiting for capacity does not count), and pool containers that did not
   * become `warm` within it.
   */
  async failStuck(startTimeoutSeconds: number): Promise<Session[]> {
    const message = `did not start within ${startTimeoutSeconds} s`;
    const rows: Row[] = await this.dataSource.query(
      `WITH changed AS (
         UPDATE sessions SET status = 'failed', end_reason = 'failed', updated_at = now(), deleted_at = now(), error_message = $2
         WHERE (status = 'starting' AND admitted_at <= now() - make_interval(secs => $1))
            OR (status = 'warming' AND created_at <= now() - make_interval(secs => $1))
         RETURNING ${SESSION_COLUMNS}
       ), ${EVENT_PER_ROW(`'failed'`, `'system'`, `jsonb_build_object('error', $2::varchar)`)}
       SELECT * FROM changed`,
      [startTimeoutSeconds, message],
    );
    return rows.map(toSession);
  }

  /** Every session some job should exist for (Redis is rebuilt from these). */
  async needingJobs(): Promise<Session[]> {
    return this.findWhere(`status = ANY($1::varchar[])`, [HOLDING_STATUSES]);
  }

  /** Sessions (and warm pool containers) whose container should be running: what the sweep checks against the platform. */
  async findRunning(): Promise<Session[]> {
    return this.findWhere(`status IN ('started', 'warm')`, []);
  }

  /**
   * A claimed pool container could not be bound: forget it, so the
   * provisioning job starts the session a container of its own (same id,
   * same token, same port). The caller has removed the old container.
   */
  async forgetPoolContainer(id: string, why: string): Promise<Session | null> {
    const rows: Row[] = await this.dataSource.query(
      `WITH changed AS (
         UPDATE sessions SET pool_variant = NULL, container_id = NULL, container_name = NULL, platform_state = '{}'::jsonb, updated_at = now()
         WHERE id = $1 AND status = 'starting' AND pool_variant IS NOT NULL RETURNING ${SESSION_COLUMNS}
       ), ${EVENT_PER_ROW(`'provisioning'`, `'worker'`, `jsonb_build_object('phase', 'cold-start', 'why', $2::varchar)`)}
       SELECT * FROM changed`,
      [id, why.slice(0, 512)],
    );
    return rows.length ? toSession(rows[0]) : null;
  }

  /** Sessions still `stopping` after `seconds`: their removal is retried by the sweep. */
  async findStoppingSince(seconds: number): Promise<Session[]> {
    return this.findWhere(`status = 'stopping' AND updated_at <= now() - make_interval(secs => $1)`, [seconds]);
  }

  /** Which of these sessions may still own a container (orphan reaping keeps those). */
  async holdingIds(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows: Row[] = await this.dataSource.query(
      `SELECT id FROM sessions WHERE id = ANY($1::uuid[]) AND status = ANY($2::varchar[])`,
      [ids, HOLDING_STATUSES],
    );
    return new Set(rows.map((row) => row.id as string));
  }

  private async findOneWhere(where: string, params: unknown[]): Promise<Session | null> {
    const rows = await this.findWhere(where, params);
    return rows[0] ?? null;
  }

  private async findWhere(where: string, params: unknown[]): Promise<Session[]> {
    const rows: Row[] = await this.dataSource.query(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE ${where}`, params);
    return rows.map(toSession);
  }
}

function toDate(value: unknown): Date | null {
  return value === null || value === undefined ? null : new Date(value as string);
}

function toEvent(row: Row): SessionEventRow {
  return {
    id: Number(row.id),
    sessionId: row.session_id as string,
    tenantId: row.tenant_id as string,
    type: row.type as string,
    actor: row.actor as string,
    data: (row.data as Record<string, unknown>) ?? {},
    createdAt: new Date(row.created_at as string),
  };
}

export function toSession(row: Row): Session {
  const session = new Session();
  session.id = row.id as string;
  session.tenantId = row.tenant_id as string;
  session.kind = row.kind as SessionKind;
  session.status = row.status as SessionStatus;
  session.poolVariant = (row.pool_variant as string) ?? null;
  session.image = row.image as string;
  session.platform = row.platform as string;
  session.platformState = (row.platform_state as PlatformState) ?? {};
  session.upstreamUrl = (row.upstream_url as string) ?? null;
  session.hostPort = (row.host_port as number) ?? null;
  session.containerId = (row.container_id as string) ?? null;
  session.containerName = (row.container_name as string) ?? null;
  session.errorMessage = (row.error_message as string) ?? null;
  session.options = (row.options as Record<string, unknown>) ?? {};
  session.owner = (row.owner as string) ?? null;
  session.workspace = (row.workspace as string) ?? null;
  session.profile = (row.profile as string) ?? null;
  session.volume = (row.volume as string) ?? null;
  session.idleTimeoutSeconds = (row.idle_timeout_seconds as number) ?? null;
  session.lastActivitySource = (row.last_activity_source as string) ?? null;
  session.stopStatus = (row.stop_status as StopStatus) ?? null;
  session.endReason = (row.end_reason as EndReason) ?? null;
  session.removalError = (row.removal_error as string) ?? null;
  session.admittedAt = toDate(row.admitted_at);
  session.createdAt = toDate(row.created_at) as Date;
  session.updatedAt = toDate(row.updated_at) as Date;
  session.startedAt = toDate(row.started_at);
  session.lastActivityAt = toDate(row.last_activity_at);
  session.expiresAt = toDate(row.expires_at) as Date;
  session.deletedAt = toDate(row.deleted_at);
  return session;
}

export { FINAL_STATUSES };
