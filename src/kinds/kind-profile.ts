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
 * A container the warm pool keeps ready for a kind, started before any
 * session exists with the launch-time options it cannot change later
 * (a browser's headless mode, a headful screen's size).
 */
export interface PoolVariant {
  /** Stored on the row (`pool_variant`) and sized in configuration: terminal, browser-headless, browser-headful. */
  readonly name: string;
  /** What the unbound agent is started with (BERTH_LAUNCH_OPTIONS), and recorded as the row's options until a claim. */
  readonly launchOptions: Record<string, unknown>;
}

/** What a launch asks of a kind, as far as the warm pool is concerned. */
export interface LaunchShape {
  options: Record<string, unknown>;
  /** A profile or workspace name: a per-session mount no pool container has. */
  storage: string | null;
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
  /** The containers the warm pool may keep for this kind. */
  readonly poolVariants: readonly PoolVariant[];
  /**
   * The pool variant that can serve this launch, or null when it needs a
   * cold start: a mount (profile, workspace) or launch-time options no pool
   * container was started with.
   */
  poolVariantFor(launch: LaunchShape): string | null;
  /** Variables for an unbound pool container's agent (docs/SESSION-CONTAINERS.md, "Warm pool"). */
  poolAgentEnv(variant: PoolVariant): Record<string, string>;
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
