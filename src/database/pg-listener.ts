import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { Client } from 'pg';
import { BerthConfig } from '../config/berth-config';

export interface ChannelListener {
  /** A NOTIFY on the channel, committed. */
  onNotification(payload: string): void;
  /**
   * The connection was down and is back (or just went down): notifications
   * may have been missed, so anything cached must be dropped or re-checked.
   */
  onResync(): void;
}

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5000;

/**
 * Postgres LISTEN/NOTIFY for the whole process: one dedicated connection,
 * opened on first use, every channel anyone subscribed to, reconnected with
 * backoff. Triggers publish the changes (no code path can forget to), so
 * whoever caches (gateway routes, API keys) or waits (SSE, waiting GETs)
 * hears of every committed change. While it is down `healthy` is false and
 * caches must not be trusted.
 */
@Injectable()
export class PgListener implements OnApplicationShutdown {
  private readonly logger = new Logger(PgListener.name);
  private readonly channels = new Map<string, Set<ChannelListener>>();
  private client: Client | null = null;
  private connecting = false;
  private closed = false;
  private connected = false;
  private everConnected = false;
  private retryMs = RECONNECT_MIN_MS;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly config: BerthConfig) {}

  get healthy(): boolean {
    return this.connected;
  }

  subscribe(channel: string, listener: ChannelListener): () => void {
    let listeners = this.channels.get(channel);
    if (!listeners) {
      this.channels.set(channel, (listeners = new Set()));
      // Already connected: listen on the new channel too (it counts as missed until then).
      if (this.connected && this.client) this.client.query(`LISTEN ${channel}`).catch((error: Error) => this.lost(this.client!, error));
    }
    listeners.add(listener);
    if (!this.client && !this.connecting && !this.closed) void this.connect();
    return () => listeners!.delete(listener);
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
    this.connecting = true;
    const client = new Client({ connectionString: this.config.database.url, connectionTimeoutMillis: 3000, keepAlive: true });
    this.client = client;
    client.on('notification', (message) => {
      if (!message.payload) return;
      for (const listener of this.channels.get(message.channel) ?? []) {
        try {
          listener.onNotification(message.payload);
        } catch (error) {
          this.logger.error({ msg: 'notification listener failed', channel: message.channel, error: (error as Error).message });
        }
      }
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    try {
      await client.connect();
      for (const channel of this.channels.keys()) await client.query(`LISTEN ${channel}`);
    } catch (error) {
      this.connecting = false;
      this.lost(client, error as Error);
      return;
    }
    this.connecting = false;
    if (this.closed || this.client !== client) return;
    const reconnected = this.everConnected;
    this.connected = true;
    this.everConnected = true;
    this.retryMs = RECONNECT_MIN_MS;
    if (reconnected) {
      this.logger.log({ msg: 'change notifications back; caches resynchronised' });
      this.resyncAll();
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
    if (wasConnected) {
      this.logger.warn({ msg: 'change notifications lost; caches bypassed until they are back', error: error.message });
      this.resyncAll();
    }
    this.retryTimer = setTimeout(() => void this.connect(), this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
  }

  private resyncAll(): void {
    for (const listeners of this.channels.values()) {
      for (const listener of listeners) {
        try {
          listener.onResync();
        } catch (error) {
          this.logger.error({ msg: 'resync listener failed', error: (error as Error).message });
        }
      }
    }
  }
}
