import { BeforeApplicationShutdown, Injectable } from '@nestjs/common';
import { EventEmitter } from 'node:events';

const CLOSING = Symbol('closing');

/**
 * In-process "this session changed" signal. A GET that waits for a session to
 * start wakes at once when this process handles the change (the callback, a
 * DELETE); changes made elsewhere (the worker, another replica) are picked up
 * by the waiter's short re-read interval instead.
 */
@Injectable()
export class SessionEvents implements BeforeApplicationShutdown {
  private readonly emitter = new EventEmitter().setMaxListeners(0);
  /** Set on shutdown: waiters answer at once so they do not hold the HTTP server open. */
  closing = false;

  beforeApplicationShutdown(): void {
    this.closing = true;
    this.emitter.emit(CLOSING);
  }

  changed(sessionId: string): void {
    this.emitter.emit(sessionId);
  }

  /** Resolves on the next change of this session, or after `ms`. */
  next(sessionId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.emitter.off(sessionId, done);
        this.emitter.off(CLOSING, done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.emitter.once(sessionId, done);
      this.emitter.once(CLOSING, done);
    });
  }
}
