import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { BerthConfig } from '../config/berth-config';
import { LIVE_STATUSES } from '../sessions/session-status';

export interface BrowserProfile {
  name: string;
  volume: string;
  createdAt: Date;
  lastUsedAt: Date;
  /** The live session using it, if any (at most one: a unique index says so). */
  liveSessionId: string | null;
}

type Row = Record<string, unknown>;

/** All SQL about persistent browser profiles. */
@Injectable()
export class BrowserProfilesRepository {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly config: BerthConfig,
  ) {}

  /**
   * The profile's volume, creating the profile on first use. The volume name
   * is the profile's slug plus a random suffix: deleting a profile and
   * creating one of the same name never reaches the old data.
   */
  async use(name: string): Promise<string> {
    const rows: Row[] = await this.dataSource.query(
      `INSERT INTO browser_profiles (name, volume) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET last_used_at = now()
       RETURNING volume`,
      [name, this.volumeName(name)],
    );
    return rows[0].volume as string;
  }

  async list(): Promise<BrowserProfile[]> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT p.name, p.volume, p.created_at, p.last_used_at, s.id AS live_session_id
       FROM browser_profiles p
       LEFT JOIN sessions s ON s.profile = p.name AND s.status = ANY($1::varchar[])
       ORDER BY p.name`,
      [LIVE_STATUSES],
    );
    return rows.map((row) => ({
      name: row.name as string,
      volume: row.volume as string,
      createdAt: new Date(row.created_at as string),
      lastUsedAt: new Date(row.last_used_at as string),
      liveSessionId: (row.live_session_id as string) ?? null,
    }));
  }

  /**
   * Deletes the profile unless a live session uses it, in one statement (no
   * window between the check and the delete). Returns the volume to remove,
   * 'in-use', or null when there was no such profile.
   */
  async delete(name: string): Promise<string | 'in-use' | null> {
    const rows: Row[] = await this.dataSource.query(
      `WITH live AS (SELECT 1 FROM sessions WHERE profile = $1 AND status = ANY($2::varchar[]))
       DELETE FROM browser_profiles WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM live)
       RETURNING volume`,
      [name, LIVE_STATUSES],
    );
    if (rows.length) return rows[0].volume as string;
    const exists: Row[] = await this.dataSource.query(`SELECT 1 FROM browser_profiles WHERE name = $1`, [name]);
    return exists.length ? 'in-use' : null;
  }

  /** Volumes something still refers to: a profile, or a live session (the cleanup sweep keeps these). */
  async referencedVolumes(): Promise<Set<string>> {
    const rows: Row[] = await this.dataSource.query(
      `SELECT volume FROM browser_profiles
       UNION SELECT volume FROM sessions WHERE volume IS NOT NULL AND status = ANY($1::varchar[])`,
      [LIVE_STATUSES],
    );
    return new Set(rows.map((row) => row.volume as string));
  }

  private volumeName(name: string): string {
    // Valid as a Docker volume name and a Kubernetes object name (DNS-1123, 63 characters).
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 24) || 'profile';
    return `${this.config.platform.instance}-profile-${slug}-${randomBytes(4).toString('hex')}`.slice(0, 63);
  }
}
