import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { EndReason, SessionKind, SessionStatus, StopStatus } from './session-status';

/** What a platform adapter needs to find its container again after a restart. */
export type PlatformState = Record<string, string | number | boolean | null>;

/** The schema is owned by migrations/ (synchronize is never on); this mapping mirrors it. */
@Entity({ name: 'sessions' })
export class Session {
  @PrimaryColumn('uuid')
  id: string;

  /**
   * The tenant whose key created it; no other tenant ever sees it. NULL only
   * on a warm pool container not claimed yet, which no query made for a
   * tenant can return (they all filter on tenant_id).
   */
  @Column({ name: 'tenant_id', type: 'uuid', nullable: true })
  tenantId: string;

  @Column({ type: 'varchar', length: 16 })
  kind: SessionKind;

  @Column({ type: 'varchar', length: 16 })
  status: SessionStatus;

  /**
   * Set when the container came from the warm pool (terminal,
   * browser-headless, browser-headful): the variant it was started as.
   */
  @Column({ name: 'pool_variant', type: 'varchar', length: 32, nullable: true })
  poolVariant: string | null;

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


  /** What the session's kind was launched with (browser: start_url, headless, viewport, view_only). */
  @Column({ type: 'jsonb', default: () => "'{}'::jsonb" })
  options: Record<string, unknown>;

  /** The end user the session is for (an email, a user id), as the client names them. */
  @Column({ type: 'varchar', length: 255, nullable: true })
  owner: string | null;

  /** Terminals: the owner's persistent workspace (its home directory). */
  @Column({ type: 'varchar', length: 128, nullable: true })
  workspace: string | null;

  /** The persistent browser profile the session uses; one live session per profile. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  profile: string | null;

  /** The persistent volume the session mounts (its profile's, its workspace's). */
  @Column({ type: 'varchar', length: 255, nullable: true })
  volume: string | null;

  /** When capacity let it start (the start timeout counts from here). */
  @Column({ name: 'admitted_at', type: 'timestamptz', nullable: true })
  admittedAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;

  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt: Date | null;

  /** Last traffic through the gateway (debounced), heartbeat, reuse, or the start. */
  @Column({ name: 'last_activity_at', type: 'timestamptz', nullable: true })
  lastActivityAt: Date | null;

  /** What the last activity was: gateway | heartbeat | launch | start. */
  @Column({ name: 'last_activity_source', type: 'varchar', length: 16, nullable: true })
  lastActivitySource: string | null;

  /** Idle this long (no traffic, no heartbeat) and the session is stopped; null: no idle timeout. */
  @Column({ name: 'idle_timeout_seconds', type: 'integer', nullable: true })
  idleTimeoutSeconds: number | null;

  /** While `stopping`: the status it ends in once its container is gone. */
  @Column({ name: 'stop_status', type: 'varchar', length: 16, nullable: true })
  stopStatus: StopStatus | null;

  @Column({ name: 'end_reason', type: 'varchar', length: 32, nullable: true })
  endReason: EndReason | null;

  /** Why the last attempt to remove the container failed (retried until it succeeds). */
  @Column({ name: 'removal_error', type: 'varchar', length: 1024, nullable: true })
  removalError: string | null;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt: Date;

  /** When the session left the live states (stopped, expired or failed). */
  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt: Date | null;
}
