import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { BerthConfig } from '../config/berth-config';
import { rowsOf } from '../database/rows';
import { HOLDING_STATUSES, SessionKind } from '../sessions/session-status';

/** Storage that outlives sessions: a browser profile, or a terminal workspace (the home directory). */
export interface StoredVolume {
  id: string;
  tenantId: string;
  kind: SessionKind;
  /** '' when the volume belongs to no particular owner. */
  owner: string;
  name: string;
  /** The platform's name for it (a Docker volume, a PersistentVolumeClaim). */
  volume: string;
  createdAt: Date;
  lastUsedAt: Date;
  /** The session holding it right now, if any (at most one: a unique index says so). */
  sessionId: string | null;
}

export interface VolumeScope {
  tenantId: string;
  kind: SessionKind;
  owner?: string;
}

type Row = Record<string, unknown>;

function toVolume(row: Row): StoredVolume {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    kind: row.kind as SessionKind,
    owner: row.owner as string,
    name: row.name as string,
    volume: row.volume as string,
    createdAt: new Date(row.created_at as string),
    lastUsedAt: new Date(row.last_used_at as string),
    sessionId: (row.session_id as string) ?? null,
  };
}

/** All SQL about persistent volumes: profiles and workspaces, per tenant and owner. */
@Injectable()
export class VolumesRepository {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly config: BerthConfig,
  ) {}

  /**
   * The volume for (tenant, kind, owner, name), created on first use. Its
   * platform name is a slug plus a random suffix: deleting a profile and
   * creating one of the same name never reaches the old data.
   */
  async use(scope: VolumeScope & { name: string }): Promise<string> {
    const rows: Row[] = await this.dataSource.query(
      `INSERT INTO volumes (tenant_id, kind, owner, name, volume) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant_id, kind, owner, name) DO UPDATE SET last_used_at = now()
       RETURNING volume`,
      [scope.tenantId, scope.kind, scope.owner ?? '', scope.name, this.platformName(scope.kind, scope.name)],
    );
    return rows[0].volume as string;
  }

  async list(scope: VolumeScope): Promise<StoredVolume[]> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT v.*, s.id AS session_id FROM volumes v
       LEFT JOIN sessions s ON s.volume = v.volume AND s.status = ANY($4::varchar[])
       WHERE v.tenant_id = $1 AND v.kind = $2 AND ($3::varchar IS NULL OR v.owner = $3)
       ORDER BY v.owner, v.name`,
      [scope.tenantId, scope.kind, scope.owner ?? null, HOLDING_STATUSES],
    );
    return rows.map(toVolume);
  }

  /**
   * Deletes the volume's record unless a session holds it, in one statement
   * (no window between the check and the delete). Returns the platform name
   * to remove, 'in-use', or null when there is no such volume in the tenant.
   */
  async delete(scope: VolumeScope, id: string): Promise<string | 'in-use' | null> {
    const rows = rowsOf<Row>(await this.dataSource.query(
      `DELETE FROM volumes v WHERE v.id = $1 AND v.tenant_id = $2 AND v.kind = $3
         AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.volume = v.volume AND s.status = ANY($4::varchar[]))
       RETURNING v.volume`,
      [id, scope.tenantId, scope.kind, HOLDING_STATUSES],
    ));
    if (rows.length) return rows[0].volume as string;
    const exists: Row[] = await this.dataSource.query(`SELECT 1 FROM volumes WHERE id = $1 AND tenant_id = $2 AND kind = $3`, [id, scope.tenantId, scope.kind]);
    return exists.length ? 'in-use' : null;
  }

  /** Platform volumes something still refers to: a record, or a session that may own a container (the sweep keeps these). */
  async referencedVolumes(): Promise<Set<string>> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT volume FROM volumes UNION SELECT volume FROM sessions WHERE volume IS NOT NULL AND status = ANY($1::varchar[])`,
      [HOLDING_STATUSES],
    );
    return new Set(rows.map((row) => row.volume as string));
  }

  private platformName(kind: SessionKind, name: string): string {
    // Valid as a Docker volume name and a Kubernetes object name (DNS-1123, 63 characters).
    const purpose = kind === SessionKind.Browser ? 'profile' : 'workspace';
    const prefix = `${this.config.platform.instance}-${purpose}-`;
    const suffix = `-${randomBytes(4).toString('hex')}`;
    const room = 63 - prefix.length - suffix.length;
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, room).replace(/^-+|-+$/g, '') || 'v';
    return `${prefix}${slug}${suffix}`;
  }
}
