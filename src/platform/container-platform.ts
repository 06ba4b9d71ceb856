import { ContainerResources } from '../config/berth-config';
import { SessionKind } from '../sessions/session-status';
import { PlatformState } from '../sessions/session.entity';

/** The home of the unprivileged user (uid 1000) in every session image. */
export const SESSION_HOME = '/home/berth';

/** Storage that outlives a session (a browser profile, a terminal workspace): a named volume, or a PersistentVolumeClaim. */
export interface PersistentVolume {
  /** Deterministic name owned by Berth; the platform creates it on first use, labelled as Berth's. */
  name: string;
  mountPath: string;
  purpose: 'profile' | 'workspace';
  /** Requested size where the platform sizes volumes (Kubernetes). */
  sizeBytes: number;
}

/** A volume this install created, as found on the platform (for garbage collection). */
export interface ManagedVolume {
  name: string;
  purpose: PersistentVolume['purpose'];
  createdAt: Date;
}

/** What the caller asks a platform to run for one session. */
export interface SessionContainerSpec {
  sessionId: string;
  kind: SessionKind;
  image: string;
  /**
   * Secrets and endpoints the session agent needs (docs/SESSION-CONTAINERS.md).
   * The platform adds its own networking variables (BERTH_LISTEN_HOST, BERTH_PORT).
   */
  env: Record<string, string>;
  /** The port Berth allocated, for platforms that share the host's network (`requiresHostPort`). */
  hostPort?: number;
  resources: ContainerResources;
  /** Seconds between SIGTERM and SIGKILL: the agent's clean shutdown (a browser saves its profile). */
  stopGraceSeconds: number;
  volumes: PersistentVolume[];
}

/** Enough to find a container again, even from another process after a restart. */
export interface ContainerRef {
  sessionId: string;
  kind: SessionKind;
  /** The adapter's own small JSON document, persisted on the session row. */
  state: PlatformState;
}

export interface CreatedContainer {
  containerId: string;
  containerName: string;
  state: PlatformState;
}

export interface StartedContainer extends CreatedContainer {
  /** True when a container for this session already existed and was adopted. */
  adopted: boolean;
}

export type ContainerStatus =
  | { state: 'running'; upstreamUrl?: string }
  | { state: 'exited'; exitCode: number | null; reason: string }
  | { state: 'gone' };

/** A container this install created, as found on the platform (for orphan reaping). */
export interface ManagedContainer {
  sessionId: string;
  kind: SessionKind;
  containerName: string;
  createdAt: Date;
  /** What `poll` would call running (created, starting or up): the sweep polls only the others. */
  running: boolean;
}

/**
 * The platform adapter contract, modelled on JupyterHub's Spawner.
 *
 * Guarantees every implementation gives:
 * - `start` is idempotent: names are deterministic per session, and a container
 *   that already exists for the session is adopted, never duplicated.
 * - `stop` is idempotent: a container that is already gone is success.
 * - `poll` never throws for a missing container; it answers `gone`.
 * - Everything the adapter creates carries ownership labels (instance and
 *   session id), and `listManaged` returns only those.
 * - Errors are PlatformError, flagged transient (retry) or permanent (fail).
 * Timeouts are the caller's job, not the adapter's.
 */
export interface ContainerPlatform {
  readonly name: 'docker' | 'kubernetes';
  /** Sessions share the host's network: each needs a port allocated by Berth (spec.hostPort). */
  readonly requiresHostPort: boolean;
  /**
   * Where the gateway will reach the session's agent (`http://host:port`),
   * when the platform knows it before the container exists (Docker: the
   * allocated host port, or the container's name on its network); null when
   * only the running container will tell (a pod's IP: `poll` reports it).
   * Always what the platform assigned, never what a container says of itself.
   */
  upstreamUrlFor(spec: SessionContainerSpec): string | null;
  /**
   * Creates (or adopts) and starts the container. `onCreated` runs once the
   * container exists and before it runs, so whatever the caller records about
   * it is there before the container can call back.
   */
  start(spec: SessionContainerSpec, onCreated?: (created: CreatedContainer) => Promise<void>): Promise<StartedContainer>;
  stop(ref: ContainerRef): Promise<void>;
  poll(ref: ContainerRef): Promise<ContainerStatus>;
  listManaged(): Promise<ManagedContainer[]>;
  /**
   * Removes a persistent volume. Idempotent: a missing volume is 'gone'.
   * A volume a container still mounts is left alone ('in-use').
   */
  removeVolume(name: string): Promise<'removed' | 'gone' | 'in-use'>;
  listManagedVolumes(): Promise<ManagedVolume[]>;
  /** Cheap reachability check for /health. */
  ping(): Promise<void>;
  /**
   * Streams the exits of this install's containers as they happen, where the
   * platform has such a stream (Docker's event stream, a Kubernetes pod
   * watch): `onExit` with the
   * session id of a container that stopped, `onResync` each time the stream
   * reconnects after a break (exits meanwhile were not seen: reconcile).
   * Returns a function that stops watching. Platforms without it rely on the
   * periodic sweep and the reachability watch (CleanupScheduler).
   */
  watchExits?(handlers: ExitHandlers): () => void;
}

export interface ExitHandlers {
  onExit(sessionId: string): void;
  onResync(): void;
}

/** Injection token for the configured ContainerPlatform. */
export const CONTAINER_PLATFORM = Symbol('ContainerPlatform');

export class PlatformError extends Error {
  constructor(
    message: string,
    /** Transient errors (engine unreachable, 5xx) are retried with backoff; permanent ones fail the session. */
    readonly transient: boolean,
  ) {
    super(message);
    this.name = 'PlatformError';
  }
}

/** Labels every adapter puts on what it creates. */
export const LABELS = {
  managedBy: 'berth.managed-by',
  instance: 'berth.instance',
  sessionId: 'berth.session-id',
  kind: 'berth.session-kind',
  volumePurpose: 'berth.volume-purpose',
} as const;

/**
 * Deterministic, DNS-safe name: a readable prefix plus the session id, which
 * is already unique. Valid as a Docker container name and a Kubernetes name.
 */
export function sessionContainerName(instance: string, kind: SessionKind, sessionId: string): string {
  return `${instance}-${kind}-${sessionId}`.toLowerCase();
}
