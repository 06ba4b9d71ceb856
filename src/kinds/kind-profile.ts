import { KindSettings } from '../config/berth-config';
import { PersistentVolume } from '../platform/container-platform';
import { SessionKind } from '../sessions/session-status';
import { DiscoveryBase } from './devtools-discovery';

/** The facts about a session a profile works from (a subset of the row). */
export interface SessionFacts {
  id: string;
  kind: SessionKind;
  options: Record<string, unknown>;
  /** The persistent volume the session mounts (a browser profile's, a terminal workspace's), if any. */
  volume: string | null;
}

/** Kind-specific public addresses, on top of the generic tunnel_url / path_url. */
export interface KindUrls {
  cdp_url: string | null;
  live_view_url: string | null;
}

/**
 * A kind of session, as JupyterHub's spawner profiles vary one Spawner: what
 * image it runs within which limits, what its agent is told, what it mounts,
 * which URLs it exposes. Everything else (the sessions table, the state
 * machine, provisioning, callbacks, cleanup, the gateway) is shared and never
 * asks which kind it is handling.
 */
export interface KindProfile {
  readonly kind: SessionKind;
  readonly settings: KindSettings;
  /** Seconds the agent gets to shut down cleanly (SIGTERM to SIGKILL). */
  readonly stopGraceSeconds: number;
  /** Variables for the agent besides the ones every kind gets (session id, callback, secret hash). */
  agentEnv(session: SessionFacts): Record<string, string>;
  /** Where the session's persistent volume (if any) is mounted. */
  volumes(session: SessionFacts): PersistentVolume[];
  /** `accessToken` is known only in the response that created it; URLs then carry it for one-click use. */
  urls(session: SessionFacts, started: boolean, accessToken?: string): KindUrls;
  /**
   * A response the gateway must rewrite before users see it (the browser's
   * DevTools discovery documents name the agent's address); null: stream it.
   */
  gatewayRewrite?(upstreamPath: string, base: DiscoveryBase): ((body: Buffer) => Buffer) | null;
}
