/**
 * The gateway's WebSocket splicer, a process of its own (started by
 * WebSocketSplicer): after the gateway has authenticated an upgrade and
 * opened the upstream, it hands both sockets over here and this process
 * pumps bytes between them until either side closes.
 *
 * Why a process: forwarding allocates a new buffer per socket read, and V8
 * answers that churn with a full mark-compact every ~130 ms; in the gateway,
 * each one marks a heap of ~25 MiB (Nest, TypeORM, pg for the routes), which
 * took a third of its CPU and held WebSocket throughput to ~0.57x of direct
 * (docs/BENCHMARKS.md). This process loads nothing but Node's core: the same
 * collections mark a heap of a few MiB.
 *
 * Why it looks the way it does: most WebSockets sit idle for hours, so what
 * one costs at rest is what counts. Every socket shares the same four
 * listener functions (they find their pair through the socket itself)
 * instead of pipe()'s eight closures per direction plus ours: 2.5 KiB of
 * heap per WebSocket instead of 6.2 (measured with 1,000).
 *
 * It imports nothing from Berth on purpose. Protocol (IPC messages):
 *   parent -> child  {type:'client'|'upstream', key, sessionId, pending}  + the socket handle
 *                    {type:'close', key}       end one WebSocket (the gateway knows a session's keys)
 *   child -> parent  {type:'closed', key, sessionId}
 *                    {type:'active', sessionIds}  sessions with traffic since the last report
 */
import type { Socket } from 'node:net';

interface SpliceMessage {
  type: 'client' | 'upstream' | 'close';
  key?: number;
  sessionId?: string;
  /** Bytes the parent had already read from this socket (base64): they go to the other side first. */
  pending?: string;
}

interface Pair {
  key: number;
  sessionId: string;
  client: Socket | undefined;
  upstream: Socket | undefined;
  clientPending: Buffer | undefined;
  upstreamPending: Buffer | undefined;
  closed: boolean;
}

/** A socket as this process holds it: its pair and the socket on the other side. */
type Spliced = Socket & { [PAIR]?: Pair; [PEER]?: Socket };
const PAIR = Symbol('pair');
const PEER = Symbol('peer');

/** How often traffic is reported to the parent (it debounces its writes further). */
const ACTIVITY_REPORT_MS = 1000;

const pairs = new Map<number, Pair>();
let active = new Set<string>();

function send(message: object): void {
  if (process.connected) process.send!(message, undefined, {}, () => undefined);
}

function closePair(pair: Pair): void {
  if (pair.closed) return;
  pair.closed = true;
  pair.client?.destroy();
  pair.upstream?.destroy();
  pairs.delete(pair.key);
  send({ type: 'closed', key: pair.key, sessionId: pair.sessionId });
}

// The listeners every spliced socket shares (`this` is the socket).

/** Forwards with backpressure: a peer that cannot take more pauses this side until it drains. */
function onData(this: Spliced, chunk: Buffer): void {
  active.add(this[PAIR]!.sessionId);
  if (!this[PEER]!.write(chunk)) this.pause();
}
function onDrain(this: Spliced): void {
  this[PEER]!.resume();
}
/** A half-close travels on, as with pipe(). */
function onEnd(this: Spliced): void {
  this[PEER]!.end();
}
function onCloseOrError(this: Spliced): void {
  closePair(this[PAIR]!);
}

function start(pair: Pair): void {
  const client = pair.client as Spliced;
  const upstream = pair.upstream as Spliced;
  // What the parent had read already goes first, in order.
  if (pair.clientPending?.length) upstream.write(pair.clientPending);
  if (pair.upstreamPending?.length) client.write(pair.upstreamPending);
  pair.clientPending = pair.upstreamPending = undefined;
  client[PEER] = upstream;
  upstream[PEER] = client;
  for (const socket of [client, upstream]) {
    socket.setNoDelay(true);
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('end', onEnd);
    socket.on('close', onCloseOrError);
  }
  client.setKeepAlive(true, 30_000);
}

function attach(message: SpliceMessage, socket: Spliced | undefined): void {
  const { key, sessionId } = message;
  if (key === undefined || !sessionId) {
    socket?.destroy();
    return;
  }
  if (!socket) {
    // The handle did not arrive (the parent's socket closed meanwhile): the pair cannot work.
    const pair = pairs.get(key);
    if (pair) closePair(pair);
    else send({ type: 'closed', key, sessionId });
    return;
  }
  let pair = pairs.get(key);
  if (!pair) {
    pair = { key, sessionId, client: undefined, upstream: undefined, clientPending: undefined, upstreamPending: undefined, closed: false };
    pairs.set(key, pair);
  }
  socket[PAIR] = pair;
  socket.on('error', onCloseOrError);
  const pending = message.pending ? Buffer.from(message.pending, 'base64') : undefined;
  if (message.type === 'client') {
    pair.client = socket;
    pair.clientPending = pending;
  } else {
    pair.upstream = socket;
    pair.upstreamPending = pending;
  }
  if (pair.closed) {
    socket.destroy();
    return;
  }
  if (pair.client && pair.upstream) start(pair);
}

process.on('message', (message: SpliceMessage, handle: unknown) => {
  switch (message?.type) {
    case 'client':
    case 'upstream':
      return attach(message, handle as Spliced | undefined);
    case 'close': {
      const pair = message.key !== undefined ? pairs.get(message.key) : undefined;
      if (pair) closePair(pair);
      return;
    }
  }
});

setInterval(() => {
  if (active.size === 0) return;
  send({ type: 'active', sessionIds: [...active] });
  active = new Set();
}, ACTIVITY_REPORT_MS).unref();

// The gateway went away (crash or shutdown): its clients reconnect elsewhere.
process.on('disconnect', () => process.exit(0));
