import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { SessionChange, SessionChangeFeed, SessionChangeListener } from '../sessions/session-change-feed';
import { SessionStatus } from '../sessions/session-status';
import { SessionRoute, SessionsRepository } from '../sessions/sessions.repository';

/** Routes kept in memory; beyond this the oldest are dropped (reloaded on their next request). */
const MAX_CACHED = 100_000;

export interface RouteRevocationListener {
  /** The session left `started` (or vanished): its token no longer opens it. */
  onRevoked(sessionId: string): void;
  /** Notifications may have been missed: re-check every open connection. */
  onResync(): void;
}

/**
 * Session id -> route (status, upstream, token hash), cached in memory so a
 * proxied request costs no database query in steady state. Correct across
 * replicas because every change is pushed by Postgres (SessionChangeFeed):
 * an entry is dropped the moment its session changes, and the whole cache
 * while the feed is down (requests then read Postgres directly).
 */
@Injectable()
export class SessionRoutes implements SessionChangeListener, OnModuleInit, OnModuleDestroy {
  private readonly cache = new Map<string, SessionRoute | null>();
  private readonly loading = new Map<string, Promise<SessionRoute | null>>();
  private readonly listeners = new Set<RouteRevocationListener>();
  /** Bumped on every change: a load that overlapped one must not be cached (it may predate it). */
  private epoch = 0;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly sessions: SessionsRepository,
    private readonly feed: SessionChangeFeed,
  ) {}

  onModuleInit(): void {
    this.unsubscribe = this.feed.subscribe(this);
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
  }

  onRevocation(listener: RouteRevocationListener): void {
    this.listeners.add(listener);
  }

  /** The route, from memory when possible. Null for an id Berth does not know. */
  get(sessionId: string): Promise<SessionRoute | null> | SessionRoute | null {
    if (this.feed.healthy) {
      const cached = this.cache.get(sessionId);
      if (cached !== undefined) return cached;
    }
    const inFlight = this.loading.get(sessionId);
    if (inFlight) return inFlight;
    const epoch = this.epoch;
    const load = this.sessions
      .findRoute(sessionId)
      .then((route) => {
        if (this.feed.healthy && epoch === this.epoch) this.remember(sessionId, route);
        return route;
      })
      .finally(() => this.loading.delete(sessionId));
    this.loading.set(sessionId, load);
    return load;
  }

  onSessionChanged(change: SessionChange): void {
    this.epoch++;
    this.cache.delete(change.sessionId);
    // A new token changes nothing for connections already open; anything but `started` ends them.
    const ended = change.status !== SessionStatus.Started && change.status !== 'tokens';
    if (ended) for (const listener of this.listeners) listener.onRevoked(change.sessionId);
  }

  onResync(): void {
    this.epoch++;
    this.cache.clear();
    for (const listener of this.listeners) listener.onResync();
  }

  private remember(sessionId: string, route: SessionRoute | null): void {
    if (this.cache.size >= MAX_CACHED) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(sessionId, route);
  }
}
