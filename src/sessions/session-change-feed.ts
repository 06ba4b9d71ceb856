import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { Client } from 'pg';
import { BerthConfig } from '../config/berth-config';
import { SessionStatus } from './session-status';

/** The channel migrations/1795698000000-SessionGateway.ts notifies on, with `<id>:<status>` (or `<id>:deleted`). */
export const SESSION_CHANGED_CHANNEL = 'berth_session_changed';

export interface SessionChange {
  sessionId: string;
  /** The new status, 'deleted' when the row went away, 'tokens' when its access tokens changed. */
  status: SessionStatus | 'deleted' | 'tokens';
}

export interface SessionChangeListener {
  /** A session's routing facts changed (status, upstream, token), committed. */
  onSessionChanged(change: SessionChange): void;
  /**
   * The feed was down and is back: changes may have been missed meanwhile,
   * so anything cached from before must be dropped or re-checked.
   */
  onResync(): void;
}

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5000;

/**
 * Every committed change of a session's status, pushed by Postgres
 * (LISTEN/NOTIFY from a trigger, so no code path can forget to publish) to
 * whoever caches session state: the gateway's routes, waiting GETs. One
 * dedicated connection per process, opened on first use and reconnected with
 * backoff; while it is down `healthy` is false and users must not trust
 * their caches.
 */
@Injectable()
export class SessionChangeFeed implements OnApplicationShutdown {
  private readonly logger = new Logger(SessionChangeFeed.name);
  private readonly listeners = new Set<SessionChangeListener>();
  private client: Client | null = null;
  private started = false;
  private closed = false;
  private retryMs = RECONNECT_MIN_MS;
  private retryTimer: NodeJS.Timeout | null = null;
  private connected = false;
  private everConnected = false;

  constructor(private readonly config: BerthConfig) {}

  /** True while notifications are being received; caches may be trusted. */
  get healthy(): boolean {
    return this.connected;
  }

  subscribe(listener: SessionChangeListener): () => void {
    this.listeners.add(listener);
    if (!this.started) {
      this.started = true;
      void this.connect();
    }
    return () => this.listeners.delete(listener);
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = null;
    this.connected = false;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new Client({ connectionString: this.config.database.url, connectionTimeoutMillis: 3000, keepAlive: true });
    this.client = client;
    client.on('notification', (message) => {
      if (message.channel !== SESSION_CHANGED_CHANNEL || !message.payload) return;
      const separator = message.payload.indexOf(':');
      if (separator < 0) return;
      this.emit({ sessionId: message.payload.slice(0, separator), status: message.payload.slice(separator + 1) as SessionChange['status'] });
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    try {
      await client.connect();
      await client.query(`LISTEN ${SESSION_CHANGED_CHANNEL}`);
    } catch (error) {
      this.lost(client, error as Error);
      return;
    }
    if (this.closed || this.client !== client) return;
    const reconnected = this.everConnected;
    this.connected = true;
    this.everConnected = true;
    this.retryMs = RECONNECT_MIN_MS;
    if (reconnected) {
      this.logger.log({ msg: 'session change feed reconnected; caches resynchronised' });
      for (const listener of this.listeners) listener.onResync();
    }
  }

  private lost(client: Client, error: Error): void {
    if (this.client !== client) return; // an old connection's late event
    this.client = null;
    const wasConnected = this.connected;
    this.connected = false;
    client.removeAllListeners('notification');
    client.end().catch(() => undefined);
    if (this.closed) return;
    if (wasConnected) this.logger.warn({ msg: 'session change feed lost; caches bypassed until it is back', error: error.message });
    // Until it is back, a listener cannot know what it missed: tell it now too.
    if (wasConnected) for (const listener of this.listeners) listener.onResync();
    this.retryTimer = setTimeout(() => void this.connect(), this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
  }

  private emit(change: SessionChange): void {
    for (const listener of this.listeners) {
      try {
        listener.onSessionChanged(change);
      } catch (error) {
        this.logger.error({ msg: 'session change listener failed', sessionId: change.sessionId, error: (error as Error).message });
      }
    }
  }
}
