import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionKind } from '../sessions/session-status';
import { Session } from '../sessions/session.entity';
import { SESSION_COLUMNS, toSession } from '../sessions/sessions.repository';

/** What one pool variant should hold. */
export interface PoolTarget {
  variant: string;
  kind: SessionKind;
  image: string;
  size: number;
  /** Recorded as the row's options until a claim replaces them with the session's. */
  launchOptions: Record<string, unknown>;
}

/** One variant's pool as it stands. */
export interface PoolCount {
  variant: string;
  warming: number;
  warm: number;
}

/** Advisory lock serialising refills across workers ("pool"). */
const POOL_LOCK = 0x706f6f6c;

type Row = Record<string, unknown>;

/**
 * The warm pool's bookkeeping. Pool containers are rows of `sessions`
 * (`warming`, `warm`, no tenant) so host ports, upstreams, ownership labels,
 * orphan reaping and teardown are a session's, unchanged. The claim itself
 * is part of creating a session (SessionsRepository.create).
 */
@Injectable()
export class WarmPoolRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async counts(platform: string): Promise<PoolCount[]> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT pool_variant AS variant, count(*) FILTER (WHERE status = 'warming')::int AS warming, count(*) FILTER (WHERE status = 'warm')::int AS warm
       FROM sessions WHERE status IN ('warming', 'warm') AND platform = $1 GROUP BY pool_variant ORDER BY pool_variant`,
      [platform],
    );
    return rows.map((row) => ({ variant: row.variant as string, warming: row.warming as number, warm: row.warm as number }));
  }

  /**
   * Adds `warming` rows until every variant holds its target, within the
   * global capacity (0: none) and never while launches wait for it: the
   * pool only ever takes slots nobody asked for. Serialised across workers
   * by an advisory lock, so two refills cannot overshoot. Returns the new
   * rows; the caller starts their containers.
   */
  async refill(targets: PoolTarget[], platform: string, capacity: number, maxAgeSeconds: number): Promise<string[]> {
    const wanted = targets.filter((target) => target.size > 0);
    if (wanted.length === 0) return [];
    return this.dataSource.transaction(async (manager) => {
      await manager.query(`SELECT pg_advisory_xact_lock($1)`, [POOL_LOCK]);
      const [usage]: Row[] = await manager.query(
        `SELECT count(*) FILTER (WHERE status IN ('warming', 'warm', 'starting', 'started', 'stopping'))::int AS running,
                count(*) FILTER (WHERE status = 'pending')::int AS pending
         FROM sessions WHERE platform = $1 AND status IN ('warming', 'warm', 'pending', 'starting', 'started', 'stopping')`,
        [platform],
      );
      const held: Row[] = await manager.query(
        `SELECT pool_variant, image, count(*)::int AS n FROM sessions
         WHERE status IN ('warming', 'warm') AND platform = $1 GROUP BY pool_variant, image`,
        [platform],
      );
      let room = capacity > 0 ? capacity - (usage.running as number) - (usage.pending as number) : Number.POSITIVE_INFINITY;
      const ids: string[] = [];
      for (const target of wanted) {
        const have = (held.find((row) => row.pool_variant === target.variant && row.image === target.image)?.n as number | undefined) ?? 0;
        const add = Math.max(0, Math.min(target.size - have, room));
        if (add === 0) continue;
        room -= add;
        // Ages spread over the last tenth of the maximum, so a pool filled at once is not replaced at once.
        const rows: Row[] = await manager.query(
          `INSERT INTO sessions (tenant_id, kind, status, pool_variant, image, platform, options, expires_at)
           SELECT NULL, $1, 'warming', $2, $3, $4, $5::jsonb, now() + make_interval(secs => $6 * (0.9 + 0.1 * random()))
           FROM generate_series(1, $7) RETURNING id`,
          [target.kind, target.variant, target.image, platform, JSON.stringify(target.launchOptions), maxAgeSeconds, add],
        );
        ids.push(...rows.map((row) => row.id as string));
      }
      return ids;
    });
  }

  /**
   * Retires pool containers nobody should claim any more: older than the
   * maximum age, of a variant or image no longer configured, or beyond a
   * variant's target (the newest ready ones are kept). They become
   * `stopping` (ending `stopped`, reason `retired`); the caller tears them down.
   */
  async retire(targets: PoolTarget[], platform: string): Promise<Session[]> {
    const rows: Row[] = await this.dataSource.query(
      `WITH target AS (SELECT * FROM unnest($2::varchar[], $3::varchar[], $4::int[]) AS t(variant, image, size)),
       pool AS (
         SELECT s.id, s.status, s.expires_at, t.size, t.variant IS NOT NULL AS wanted,
                row_number() OVER (PARTITION BY s.pool_variant, t.variant IS NOT NULL
                                   ORDER BY s.status = 'warm' DESC, s.created_at DESC) AS rank
         FROM sessions s LEFT JOIN target t ON t.variant = s.pool_variant AND t.image = s.image
         WHERE s.status IN ('warming', 'warm') AND s.platform = $1
       ),
       changed AS (
         UPDATE sessions SET status = 'stopping', stop_status = 'stopped', end_reason = 'retired', updated_at = now(), deleted_at = now()
         WHERE id IN (SELECT id FROM pool WHERE NOT wanted OR rank > size OR (status = 'warm' AND expires_at <= now()))
           AND status IN ('warming', 'warm')
         RETURNING ${SESSION_COLUMNS}
       )
       SELECT * FROM changed`,
      [platform, targets.map((t) => t.variant), targets.map((t) => t.image), targets.map((t) => t.size)],
    );
    return rows.map(toSession);
  }

  /**
   * Capacity is short and launches wait for it: pool containers give up as
   * many slots as the waiting launches need (not yet ready ones first).
   */
  async yieldToWaiting(platform: string, capacity: number): Promise<Session[]> {
    if (capacity === 0) return [];
    const rows: Row[] = await this.dataSource.query(
      `WITH usage AS (
         SELECT count(*) FILTER (WHERE status <> 'pending')::int AS running, count(*) FILTER (WHERE status = 'pending')::int AS pending
         FROM sessions WHERE platform = $1 AND status IN ('warming', 'warm', 'pending', 'starting', 'started', 'stopping')
       ),
       doomed AS (
         SELECT id FROM sessions WHERE status IN ('warming', 'warm') AND platform = $1
         ORDER BY status = 'warming' DESC, created_at
         LIMIT (SELECT CASE WHEN pending > 0 THEN GREATEST(0, running + pending - $2) ELSE 0 END FROM usage)
         FOR UPDATE SKIP LOCKED
       ),
       changed AS (
         UPDATE sessions SET status = 'stopping', stop_status = 'stopped', end_reason = 'retired', updated_at = now(), deleted_at = now()
         WHERE id IN (SELECT id FROM doomed) AND status IN ('warming', 'warm')
         RETURNING ${SESSION_COLUMNS}
       )
       SELECT * FROM changed`,
      [platform, capacity],
    );
    return rows.map(toSession);
  }
}
