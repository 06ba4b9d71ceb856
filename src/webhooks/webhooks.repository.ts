import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SessionEventRow } from '../sessions/sessions.repository';

export interface Webhook {
  id: string;
  tenantId: string;
  url: string;
  /** Event types it wants; null: all. */
  events: string[] | null;
  createdAt: Date;
}

/** A delivery to make: one event for one endpoint. */
export interface PendingDelivery {
  webhookId: string;
  eventId: number;
}

type Row = Record<string, unknown>;

function toWebhook(row: Row): Webhook {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    url: row.url as string,
    events: (row.events as string[]) ?? null,
    createdAt: new Date(row.created_at as string),
  };
}

/** All SQL about webhook endpoints and how far their events were dispatched. */
@Injectable()
export class WebhooksRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async create(tenantId: string, url: string, events: string[] | null): Promise<Webhook> {
    const rows: Row[] = await this.dataSource.query(`INSERT INTO webhooks (tenant_id, url, events) VALUES ($1, $2, $3) RETURNING *`, [tenantId, url, events]);
    return toWebhook(rows[0]);
  }

  async list(tenantId: string): Promise<Webhook[]> {
    const rows: Row[] = await this.dataSource.query(`SELECT * FROM webhooks WHERE tenant_id = $1 ORDER BY created_at`, [tenantId]);
    return rows.map(toWebhook);
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const result = (await this.dataSource.query(`DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2`, [tenantId, id])) as [unknown[], number];
    return result[1] === 1;
  }

  async find(id: string): Promise<Webhook | null> {
    const rows: Row[] = await this.dataSource.query(`SELECT * FROM webhooks WHERE id = $1`, [id]);
    return rows.length ? toWebhook(rows[0]) : null;
  }

  /**
   * The next events after the cursor, each paired with the endpoints of its
   * tenant that want it. Reading and matching in one query keeps the
   * dispatcher cheap however many endpoints there are.
   */
  async pending(limit: number): Promise<{ deliveries: PendingDelivery[]; position: number; last: number }> {
    // A missing cursor (a restored or truncated database) starts at what exists now: history is not replayed.
    await this.dataSource.query(
      `INSERT INTO dispatch_cursors (name, position) SELECT 'webhooks', COALESCE(max(id), 0) FROM session_events ON CONFLICT (name) DO NOTHING`,
    );
    const [cursor]: Row[] = await this.dataSource.query(`SELECT position FROM dispatch_cursors WHERE name = 'webhooks'`);
    const position = Number(cursor.position);
    const events: Row[] = await this.dataSource.query(`SELECT id FROM session_events WHERE id > $1 ORDER BY id LIMIT $2`, [position, limit]);
    if (!events.length) return { deliveries: [], position, last: position };
    const last = Number(events[events.length - 1].id);
    const rows: Row[] = await this.dataSource.query(
      `SELECT w.id AS webhook_id, e.id AS event_id FROM session_events e
       JOIN webhooks w ON w.tenant_id = e.tenant_id AND (w.events IS NULL OR e.type = ANY(w.events))
       WHERE e.id > $1 AND e.id <= $2 ORDER BY e.id`,
      [position, last],
    );
    return { deliveries: rows.map((row) => ({ webhookId: row.webhook_id as string, eventId: Number(row.event_id) })), position, last };
  }

  /** Moves the cursor forward (never back: two dispatchers may race, both enqueue idempotently). */
  async advance(to: number): Promise<void> {
    await this.dataSource.query(`UPDATE dispatch_cursors SET position = GREATEST(position, $1) WHERE name = 'webhooks'`, [to]);
  }

  async event(id: number): Promise<SessionEventRow | null> {
    const rows: Row[] = await this.dataSource.query(`SELECT id, session_id, tenant_id, type, actor, data, created_at FROM session_events WHERE id = $1`, [id]);
    if (!rows.length) return null;
    const row = rows[0];
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
}
