import { Injectable, OnModuleInit } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PgListener } from '../database/pg-listener';
import { isFinal } from './session-status';
import { Session } from './session.entity';
import { SessionEventRow, SessionsRepository } from './sessions.repository';

/** The channel the session_events trigger notifies on: `<session id>:<event id>`. */
export const SESSION_EVENTS_CHANNEL = 'berth_session_events';

/** Comment lines keep proxies from closing an idle stream; also when a missed notification is re-read. */
const KEEPALIVE_MS = 15_000;

/** The wire shape of a session event (SSE data and webhook bodies alike). */
export function eventBody(event: SessionEventRow): Record<string, unknown> {
  return {
    id: event.id,
    type: event.type,
    session_id: event.sessionId,
    actor: event.actor,
    data: event.data,
    created_at: event.createdAt.toISOString(),
  };
}

/**
 * Server-Sent Events for one session: its history after Last-Event-ID, then
 * every new event the moment it is committed (Postgres NOTIFY wakes the
 * stream; nothing polls), ending after the session's final status.
 */
@Injectable()
export class SessionEventStream implements OnModuleInit {
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(
    private readonly listener: PgListener,
    private readonly sessions: SessionsRepository,
  ) {}

  onModuleInit(): void {
    this.listener.subscribe(SESSION_EVENTS_CHANNEL, {
      onNotification: (payload) => this.wake(payload.slice(0, payload.indexOf(':'))),
      onResync: () => {
        for (const id of [...this.waiting.keys()]) this.wake(id);
      },
    });
  }

  async stream(session: Session, req: IncomingMessage, res: ServerResponse, afterId: number): Promise<void> {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // nginx and similar would otherwise buffer the stream.
      'x-accel-buffering': 'no',
    });
    res.write(`: events of session ${session.id}\n\n`);
    let closed = false;
    let wakeNow: (() => void) | null = null;
    req.on('close', () => {
      closed = true;
      wakeNow?.();
    });
    const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
    let last = afterId;
    try {
      while (!closed) {
        const events = await this.sessions.events(session.id, last);
        for (const event of events) {
          res.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(eventBody(event))}\n\n`);
          last = event.id;
          if (isFinalEvent(event)) return;
        }
        if (events.length === 500) continue; // more history to send
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            this.waiting.get(session.id)?.delete(done);
            wakeNow = null;
            resolve();
          };
          const timer = setTimeout(done, KEEPALIVE_MS);
          wakeNow = done;
          let set = this.waiting.get(session.id);
          if (!set) this.waiting.set(session.id, (set = new Set()));
          set.add(done);
        });
      }
    } finally {
      clearInterval(keepalive);
      if (this.waiting.get(session.id)?.size === 0) this.waiting.delete(session.id);
      res.end();
    }
  }

  private wake(sessionId: string): void {
    for (const done of [...(this.waiting.get(sessionId) ?? [])]) done();
  }
}

function isFinalEvent(event: SessionEventRow): boolean {
  return isFinal(event.type as Parameters<typeof isFinal>[0]);
}
