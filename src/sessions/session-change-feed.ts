import { Injectable } from '@nestjs/common';
import { PgListener } from '../database/pg-listener';
import { SessionStatus } from './session-status';

/** The channel migrations/*-SessionGateway.ts notifies on, with `<id>:<status>` (or `<id>:deleted`, `<id>:tokens`). */
export const SESSION_CHANGED_CHANNEL = 'berth_session_changed';

export interface SessionChange {
  sessionId: string;
  /** The new status, 'deleted' when the row went away, 'tokens' when its access tokens changed. */
  status: SessionStatus | 'deleted' | 'tokens';
}

export interface SessionChangeListener {
  /** A session's routing facts changed (status, upstream, tokens), committed. */
  onSessionChanged(change: SessionChange): void;
  /** Changes may have been missed: drop or re-check anything cached. */
  onResync(): void;
}

/**
 * Every committed change of a session's status, upstream or tokens, pushed
 * by Postgres to whoever caches session state: the gateway's routes, waiting
 * GETs, provisioning jobs watching a container.
 */
@Injectable()
export class SessionChangeFeed {
  private readonly local = new Set<SessionChangeListener>();

  constructor(private readonly listener: PgListener) {}

  /**
   * A change this process has just committed, delivered to this process'
   * subscribers now rather than when Postgres' NOTIFY comes back on the
   * listening connection, which can be after the caller has its answer: a
   * DELETE's response must not race the gateway that still trusts the token.
   * The NOTIFY follows anyway (every subscriber applies a change idempotently)
   * and is what other processes hear.
   */
  committed(change: SessionChange): void {
    for (const listener of [...this.local]) listener.onSessionChanged(change);
  }

  /** True while notifications are being received; caches may be trusted. */
  get healthy(): boolean {
    return this.listener.healthy;
  }

  subscribe(listener: SessionChangeListener): () => void {
    this.local.add(listener);
    const unsubscribe = this.listener.subscribe(SESSION_CHANGED_CHANNEL, {
      onNotification: (payload) => {
        const separator = payload.indexOf(':');
        if (separator < 0) return;
        listener.onSessionChanged({ sessionId: payload.slice(0, separator), status: payload.slice(separator + 1) as SessionChange['status'] });
      },
      onResync: () => listener.onResync(),
    });
    return () => {
      this.local.delete(listener);
      unsubscribe();
    };
  }
}
