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
 * It imports nothing from Berth on purpose. Protocol (IPC messages):
 *   parent -> child  {type:'client'|'upstream', key, sessionId, pending}  + the socket handle
 *                    {type:'close', key}       end one WebSocket
 *                    {type:'close-session', sessionId}  end all of a session's
 *   child -> parent  {type:'closed', key, sessionId}
 *                    {type:'active', sessionIds}  sessions with traffic since the last report
 */
import type { Socket } from 'node:net';

interface SpliceMessage {
  type: 'client' | 'upstream' | 'close' | 'close-session';
  key?: string;
  sessionId?: string;
  /** Bytes the parent had already read from this socket (base64): they go to the other side first. */
  pending?: string;
}

interface Pair {
  key: string;
  sessionId: string;
  client?: Socket;
  upstream?: Socket;
  clientPending?: Buffer;
  upstreamPending?: Buffer;
  closed: boolean;
}

/** How often traffic is reported to the parent (it debounces its writes further). */
const ACTIVITY_REPORT_MS = 1000;

const pairs = new Map<string, Pair>();
const bySession = new Map<string, Set<string>>();
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
  const keys = bySession.get(pair.sessionId);
  keys?.delete(pair.key);
  if (keys?.size === 0) bySession.delete(pair.sessionId);
  send({ type: 'closed', key: pair.key, sessionId: pair.sessionId });
}

function start(pair: Pair): void {
  const client = pair.client!;
  const upstream = pair.upstream!;
  // What the parent had read already goes first, in order.
  if (pair.clientPending?.length) upstream.write(pair.clientPending);
  if (pair.upstreamPending?.length) client.write(pair.upstreamPending);
  const touch = () => active.add(pair.sessionId);
  for (const socket of [client, upstream]) {
    socket.setNoDelay(true);
    socket.on('data', touch);
    socket.on('close', () => closePair(pair));
  }
  client.setKeepAlive(true, 30_000);
  client.pipe(upstream);
  upstream.pipe(client);
}

function attach(message: SpliceMessage, socket: Socket | undefined): void {
  const { key, sessionId } = message;
  if (!key || !sessionId) {
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
    pair = { key, sessionId, closed: false };
    pairs.set(key, pair);
    let keys = bySession.get(sessionId);
    if (!keys) bySession.set(sessionId, (keys = new Set()));
    keys.add(key);
  }
  const current = pair;
  socket.on('error', () => closePair(current));
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
      return attach(message, handle as Socket | undefined);
    case 'close': {
      const pair = message.key ? pairs.get(message.key) : undefined;
      if (pair) closePair(pair);
      return;
    }
    case 'close-session':
      for (const key of [...(bySession.get(message.sessionId ?? '') ?? [])]) {
        const pair = pairs.get(key);
        if (pair) closePair(pair);
      }
      return;
  }
});

setInterval(() => {
  if (active.size === 0) return;
  send({ type: 'active', sessionIds: [...active] });
  active = new Set();
}, ACTIVITY_REPORT_MS).unref();

// The gateway went away (crash or shutdown): its clients reconnect elsewhere.
process.on('disconnect', () => process.exit(0));
