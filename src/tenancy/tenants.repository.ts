import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { rowsOf } from '../database/rows';
import { DEFAULT_TENANT_ID } from '../../migrations/1795710000000-TenantsAndLifecycle';

export { DEFAULT_TENANT_ID };

export interface Tenant {
  id: string;
  name: string;
  maxSessions: number | null;
  maxSessionsPerOwner: number | null;
  createdAt: Date;
  disabledAt: Date | null;
}

export interface ApiKey {
  id: string;
  tenantId: string;
  name: string;
  /** The first characters of the key, to tell keys apart in listings; never enough to use. */
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** A key as the guard needs it: valid only if neither it nor its tenant is revoked or disabled. */
export interface KeyGrant {
  keyId: string;
  keyName: string;
  tenantId: string;
  maxSessions: number | null;
  maxSessionsPerOwner: number | null;
}

type Row = Record<string, unknown>;

function toTenant(row: Row): Tenant {
  return {
    id: row.id as string,
    name: row.name as string,
    maxSessions: (row.max_sessions as number) ?? null,
    maxSessionsPerOwner: (row.max_sessions_per_owner as number) ?? null,
    createdAt: new Date(row.created_at as string),
    disabledAt: row.disabled_at ? new Date(row.disabled_at as string) : null,
  };
}

function toKey(row: Row): ApiKey {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    name: row.name as string,
    prefix: row.prefix as string,
    createdAt: new Date(row.created_at as string),
    revokedAt: row.revoked_at ? new Date(row.revoked_at as string) : null,
  };
}

/** All SQL about tenants and their API keys. */
@Injectable()
export class TenantsRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** The admin key's tenant; created by the first migration, restored here if it was removed. */
  async ensureDefaultTenant(): Promise<void> {
    await this.dataSource.query(`INSERT INTO tenants (id, name) VALUES ($1, 'default') ON CONFLICT DO NOTHING`, [DEFAULT_TENANT_ID]);
  }

  async grantFor(keyHash: string): Promise<KeyGrant | null> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT k.id, k.name, k.tenant_id, t.max_sessions, t.max_sessions_per_owner
       FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
       WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND t.disabled_at IS NULL`,
      [keyHash],
    );
    if (!rows.length) return null;
    return {
      keyId: rows[0].id as string,
      keyName: rows[0].name as string,
      tenantId: rows[0].tenant_id as string,
      maxSessions: (rows[0].max_sessions as number) ?? null,
      maxSessionsPerOwner: (rows[0].max_sessions_per_owner as number) ?? null,
    };
  }

  async tenant(id: string): Promise<Tenant | null> {
    const rows: Row[] = await this.dataSource.query(`SELECT * FROM tenants WHERE id = $1`, [id]);
    return rows.length ? toTenant(rows[0]) : null;
  }

  async tenants(): Promise<Tenant[]> {
    const rows: Row[] = await this.dataSource.query(`SELECT * FROM tenants ORDER BY created_at, name`);
    return rows.map(toTenant);
  }

  /** Null when the name is taken. */
  async createTenant(name: string, limits: { maxSessions: number | null; maxSessionsPerOwner: number | null }): Promise<Tenant | null> {
    const rows: Row[] = await this.dataSource.query(
      `INSERT INTO tenants (name, max_sessions, max_sessions_per_owner) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING *`,
      [name, limits.maxSessions, limits.maxSessionsPerOwner],
    );
    return rows.length ? toTenant(rows[0]) : null;
  }

  async updateTenant(id: string, limits: { maxSessions?: number | null; maxSessionsPerOwner?: number | null }): Promise<Tenant | null> {
    const rows = rowsOf<Row>(await this.dataSource.query(
      `UPDATE tenants SET
         max_sessions = CASE WHEN $2 THEN $3::int ELSE max_sessions END,
         max_sessions_per_owner = CASE WHEN $4 THEN $5::int ELSE max_sessions_per_owner END
       WHERE id = $1 RETURNING *`,
      [id, limits.maxSessions !== undefined, limits.maxSessions ?? null, limits.maxSessionsPerOwner !== undefined, limits.maxSessionsPerOwner ?? null],
    ));
    return rows.length ? toTenant(rows[0]) : null;
  }

  /** Disables the tenant: its keys stop working (every replica drops them on the trigger's NOTIFY). */
  async disableTenant(id: string): Promise<Tenant | null> {
    const rows = rowsOf<Row>(await this.dataSource.query(
      `UPDATE tenants SET disabled_at = COALESCE(disabled_at, now()) WHERE id = $1 RETURNING *`,
      [id],
    ));
    return rows.length ? toTenant(rows[0]) : null;
  }

  async createKey(tenantId: string, name: string, keyHash: string, prefix: string): Promise<ApiKey> {
    const rows: Row[] = await this.dataSource.query(
      `INSERT INTO api_keys (tenant_id, name, key_hash, prefix) VALUES ($1, $2, $3, $4) RETURNING *`,
      [tenantId, name, keyHash, prefix],
    );
    return toKey(rows[0]);
  }

  async keys(tenantId: string): Promise<ApiKey[]> {
    const rows: Row[] = await this.dataSource.query(`SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at`, [tenantId]);
    return rows.map(toKey);
  }

  async revokeKey(tenantId: string, keyId: string): Promise<ApiKey | null> {
    const rows = rowsOf<Row>(await this.dataSource.query(
      `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE tenant_id = $1 AND id = $2 RETURNING *`,
      [tenantId, keyId],
    ));
    return rows.length ? toKey(rows[0]) : null;
  }
}
