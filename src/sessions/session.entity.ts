import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { SessionKind, SessionStatus } from './session-status';

/** What a platform adapter needs to find its container again after a restart. */
export type PlatformState = Record<string, string | number | boolean | null>;

/** The schema is owned by migrations/ (synchronize is never on); this mapping mirrors it. */
@Entity({ name: 'sessions' })
export class Session {
  @PrimaryColumn('uuid')
  id: string;

  @Column({ type: 'varchar', length: 16 })
  kind: SessionKind;

  @Column({ type: 'varchar', length: 16 })
  status: SessionStatus;

  @Column({ type: 'varchar', length: 512 })
  image: string;

  /** Which adapter created the container (docker | kubernetes). */
  @Column({ type: 'varchar', length: 32 })
  platform: string;

  @Column({ name: 'platform_state', type: 'jsonb', default: () => "'{}'::jsonb" })
  platformState: PlatformState;

  /**
   * Where the gateway reaches the session's agent (http://host:port), as the
   * platform assigned it. Internal: users get gateway URLs built from configuration.
   */
  @Column({ name: 'upstream_url', type: 'varchar', length: 255, nullable: true })
  upstreamUrl: string | null;

  /** Host networking: the port Berth allocated to the container; NULL once the container is gone. */
  @Column({ name: 'host_port', type: 'integer', nullable: true })
  hostPort: number | null;

  @Column({ name: 'container_id', type: 'varchar', length: 255, nullable: true })
  containerId: string | null;

  @Column({ name: 'container_name', type: 'varchar', length: 255, nullable: true })
  containerName: string | null;

  @Column({ name: 'error_message', type: 'varchar', length: 1024, nullable: true })
  errorMessage: string | null;

  /** sha256 of the secret the container presents on callbacks. (Access tokens: session_access_tokens.) */
  @Column({ name: 'callback_token_hash', type: 'char', length: 64, select: false })
  callbackTokenHash: string;

  /** What the session's kind was launched with (browser: start_url, headless, viewport, view_only). */
  @Column({ type: 'jsonb', default: () => "'{}'::jsonb" })
  options: Record<string, unknown>;

  /** The persistent browser profile the session uses; one live session per profile. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  profile: string | null;

  /** The persistent volume the session mounts (its profile's, its workspace's). */
  @Column({ type: 'varchar', length: 255, nullable: true })
  volume: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;

  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt: Date | null;

  /** Last traffic through the gateway (debounced), or the start. */
  @Column({ name: 'last_activity_at', type: 'timestamptz', nullable: true })
  lastActivityAt: Date | null;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt: Date;

  /** When the session left the live states (stopped, expired or failed). */
  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt: Date | null;
}
