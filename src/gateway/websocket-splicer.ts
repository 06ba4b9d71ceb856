import { Logger } from '@nestjs/common';
import { ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';

/** One spliced WebSocket, as the gateway holds it: what revocation closes. */
export interface SplicedSocket {
  destroy(): void;
}

export interface SpliceEvents {
  /** Traffic passed through these sessions' WebSockets (either way) since the last report. */
  onActive(sessionIds: string[]): void;
  /** This spliced WebSocket ended (either side closed, or it was destroyed). */
  onClosed(sessionId: string, spliced: SplicedSocket): void;
}

/**
 * Moves upgraded WebSockets into a small child process (splice-child.ts) that
 * pumps their bytes: the gateway authenticates and opens the upstream, then
 * hands both sockets over with their handles, so the bytes never pass through
 * the gateway's own heap. See splice-child.ts for why.
 *
 * The child is started with the gateway (so the first WebSocket does not wait
 * for it) and again after it exits (its WebSockets end with it, as they would
 * with the gateway; clients reconnect).
 * Bytes the gateway had already read from a socket travel with its handle.
 */
export class WebSocketSplicer {
  private readonly logger = new Logger(WebSocketSplicer.name);
  private child: ChildProcess | null = null;
  private readonly open = new Map<number, { sessionId: string; spliced: SplicedSocket }>();
  /** Names one spliced WebSocket between the gateway and the child. */
  private nextKey = 1;
  private closing = false;

  constructor(private readonly events: SpliceEvents) {}

  /** Starts the child now rather than with the first WebSocket. */
  start(): void {
    this.ensureChild();
  }

  splice(sessionId: string, client: Socket, upstream: Socket): SplicedSocket {
    const child = this.ensureChild();
    const key = this.nextKey++;
    const spliced: SplicedSocket = { destroy: () => this.close(key) };
    this.open.set(key, { sessionId, spliced });
    const hand = (type: 'client' | 'upstream', socket: Socket) => {
      socket.pause();
      const pending = takeOver(socket);
      child.send({ type, key, sessionId, pending: pending.length ? pending.toString('base64') : undefined }, socket, {}, (error) => {
        if (!error) return;
        this.logger.warn({ msg: 'could not hand a WebSocket to the splicer', sessionId, error: error.message });
        socket.destroy();
        this.close(key);
      });
    };
    hand('client', client);
    hand('upstream', upstream);
    return spliced;
  }

  /** Ends every WebSocket and the child (shutdown). */
  async close(): Promise<void>;
  close(key: number): void;
  close(key?: number): void | Promise<void> {
    if (key === undefined) return this.shutdown();
    const entry = this.open.get(key);
    if (!entry) return;
    this.child?.send({ type: 'close', key });
    this.forget(key);
  }

  private forget(key: number): void {
    const entry = this.open.get(key);
    if (!entry) return;
    this.open.delete(key);
    this.events.onClosed(entry.sessionId, entry.spliced);
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    const child = this.child;
    this.child = null;
    for (const key of [...this.open.keys()]) this.forget(key);
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.disconnect();
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }

  private ensureChild(): ChildProcess {
    if (this.child && this.child.connected) return this.child;
    const { file, execArgv } = childEntry();
    const child = fork(file, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    child.on('message', (message: { type?: string; key?: number; sessionIds?: string[] }) => {
      if (message?.type === 'active' && message.sessionIds) this.events.onActive(message.sessionIds);
      else if (message?.type === 'closed' && message.key !== undefined) this.forget(message.key);
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      // Its WebSockets went with it.
      for (const key of [...this.open.keys()]) this.forget(key);
      if (this.closing) return;
      this.logger.warn({ msg: 'WebSocket splicer exited; starting a new one', code, signal });
      setTimeout(() => {
        if (!this.closing && !this.child) this.ensureChild();
      }, 1000).unref();
    });
    child.on('error', (error) => this.logger.warn({ msg: 'WebSocket splicer error', error: error.message }));
    this.child = child;
    return child;
  }
}

/** The compiled child next to this file; from sources (the tests), the .ts through ts-node. */
function childEntry(): { file: string; execArgv: string[] } {
  const js = join(__dirname, 'splice-child.js');
  if (existsSync(js)) return { file: js, execArgv: [] };
  return { file: join(__dirname, 'splice-child.ts'), execArgv: ['-r', 'ts-node/register/transpile-only'] };
}

type ReadableHandle = { readStop?: () => number };

/**
 * Stops this process reading from the socket and returns what it had read
 * but nobody consumed yet. Once its handle is sent, Node discards whatever
 * the handle still reads here (its onread becomes a no-op until the child
 * acknowledges it), so reading must stop first; the kernel keeps later bytes
 * for the child. All synchronous: no read can land in between.
 */
function takeOver(socket: Socket): Buffer {
  const handle = (socket as unknown as { _handle?: ReadableHandle })._handle;
  handle?.readStop?.();
  const chunks: Buffer[] = [];
  // read() may start reading again to refill its buffer: stopped once more below.
  for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) chunks.push(chunk);
  handle?.readStop?.();
  return Buffer.concat(chunks);
}
