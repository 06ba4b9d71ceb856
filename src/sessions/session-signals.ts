import { BeforeApplicationShutdown, Injectable, OnModuleInit } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { SessionChange, SessionChangeFeed } from './session-change-feed';

const CLOSING = Symbol('closing');
const RESYNC = Symbol('resync');

/**
 * "This session changed" as a wake-up signal, for code that waits on a
 * session (a GET with wait_seconds, a provisioning job watching its
 * container). Changes made in this process are signalled directly; changes
 * committed by any other process arrive through the Postgres change feed.
 * Waiters still re-read on a timer, so a missed signal costs latency only.
 */
@Injectable()
export class SessionSignals implements OnModuleInit, BeforeApplicationShutdown {
  private readonly emitter = new EventEmitter().setMaxListeners(0);
  /** Set on shutdown: waiters answer at once so they do not hold the HTTP server open. */
  closing = false;

  constructor(private readonly feed: SessionChangeFeed) {}

  onModuleInit(): void {
    this.feed.subscribe({
      onSessionChanged: (change) => this.changed(change.sessionId),
      onResync: () => this.emitter.emit(RESYNC),
    });
  }

  beforeApplicationShutdown(): void {
    this.closing = true;
    this.emitter.emit(CLOSING);
  }

  /** True when changes made by other processes are being delivered. */
  get pushed(): boolean {
    return this.feed.healthy;
  }

  changed(sessionId: string): void {
    this.emitter.emit(sessionId);
  }

  /**
   * A change this process committed that changes who may enter (the session
   * left `started`, or its tokens changed): every cache in this process, the
   * gateway's routes among them, drops it before the caller gets its answer,
   * and waiters wake.
   */
  committed(change: SessionChange): void {
    this.feed.committed(change);
  }

  /** Resolves on the next change of this session, or after `ms`. */
  next(sessionId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.emitter.off(sessionId, done);
        this.emitter.off(CLOSING, done);
        this.emitter.off(RESYNC, done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.emitter.once(sessionId, done);
      this.emitter.once(CLOSING, done);
      this.emitter.once(RESYNC, done);
    });
  }
}
