import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { IncomingMessage, STATUS_CODES, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { hashToken, tokenMatchesAny } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { SessionStatus } from '../sessions/session-status';
import { SessionAddress, SessionUrls } from '../sessions/session-urls';
import { SessionRoute, SessionsRepository } from '../sessions/sessions.repository';
import { UPSTREAM_SECRET_HEADER, upstreamSecret } from '../sessions/session-secrets';
import { KindProfiles } from '../kinds/kind-profiles';
import { ActivityRecorder } from './activity-recorder';
import { BufferedForwarder } from './buffered-forwarder';
import {
  Credential,
  cookieHeaderWithout,
  cookieName,
  findCredential,
  originAllowed,
  sessionCookie,
  withoutQueryToken,
} from './gateway-credentials';
import { RouteRevocationListener, SessionRoutes } from './session-routes';
import { ForwardTarget, UpstreamFailure, UpstreamForwarder, forwardableHeaders } from './upstream-forwarder';
import { SplicedSocket, WebSocketSplicer } from './websocket-splicer';

/** Request headers the gateway replaces or must never pass on (a client could forge them). */
const DROPPED_REQUEST_HEADERS = new Set([
  'authorization',
  'cookie',
  UPSTREAM_SECRET_HEADER,
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-real-ip',
]);

/** Paths of the agent's control API (docs/SESSION-CONTAINERS.md): Berth's own, never a user's. */
const CONTROL_PATH = /^\/\.berth(\/|$|\?)/;

const UNAUTHORIZED = JSON.stringify({
  statusCode: 401,
  error: 'Unauthorized',
  message: 'A valid access token for this session is required (Authorization: Bearer, ?token=, or the session cookie).',
});

/** Compared against when the session is unknown, so unknown ids and wrong tokens take the same time. */
const NO_SUCH_TOKEN_HASH = hashToken('no session has this token');

type Outcome =
  | { kind: 'forward'; route: SessionRoute; credential: Credential }
  | { kind: 'reject'; status: number; body: string; headers?: Record<string, string> };

function jsonError(status: number, error: string, message: string): string {
  return JSON.stringify({ statusCode: status, error, message });
}

/**
 * The one door to every session: authenticates each request with the
 * session's access token, then forwards it to the session's agent with the
 * upstream secret in its place. HTTP is streamed, WebSockets are spliced at
 * the socket level. Kind-agnostic: which session and where it lives come from
 * SessionRoutes; nothing here knows terminals from browsers.
 */
@Injectable()
export class SessionGateway implements RouteRevocationListener, OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(SessionGateway.name);
  private readonly forwarder = new UpstreamForwarder({ connectTimeoutMs: 5000, headersTimeoutMs: 30_000, bodyTimeoutMs: 300_000 });
  private readonly buffered = new BufferedForwarder();
  /** Open WebSockets, per session: what revocation closes. */
  private readonly sockets = new Map<string, Set<SplicedSocket>>();
  /** WebSocket bytes are pumped in a small process of their own (see splice-child.ts). */
  private readonly splicer = new WebSocketSplicer({
    onActive: (sessionIds) => sessionIds.forEach((id) => this.activity.touch(id)),
    onClosed: (sessionId, spliced) => this.untrack(sessionId, spliced),
  });
  private readonly secrets = new Map<string, string>();
  private readonly secure: boolean;
  private readonly forwardedProto: string;

  constructor(
    private readonly routes: SessionRoutes,
    private readonly urls: SessionUrls,
    private readonly activity: ActivityRecorder,
    private readonly sessions: SessionsRepository,
    private readonly config: BerthConfig,
    private readonly kinds: KindProfiles,
  ) {
    this.secure = urls.secure;
    this.forwardedProto = new URL(config.http.publicUrl).protocol.replace(':', '');
  }

  onModuleInit(): void {
    this.routes.onRevocation(this);
    this.splicer.start();
  }

  async onApplicationShutdown(): Promise<void> {
    // Upgraded sockets are not the HTTP server's any more: close them here so
    // clients reconnect to another replica instead of hanging on to this one.
    for (const sockets of [...this.sockets.values()]) for (const socket of [...sockets]) socket.destroy();
    this.sockets.clear();
    await this.splicer.close();
    await this.forwarder.close();
    await this.buffered.close();
  }

  /** Serves `req` if it is session traffic (by Host or path form); false leaves it to the API. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const address = this.urls.resolve(req.headers.host, req.url ?? '/');
    if (!address) return false;
    const decided = this.decide(address, req, false);
    if (decided instanceof Promise) {
      decided.then(
        (outcome) => this.respond(address, req, res, outcome),
        (error: Error) => this.failRequest(res, address, error),
      );
    } else {
      this.respond(address, req, res, decided);
    }
    return true;
  }

  /** Proxies a WebSocket upgrade if it is session traffic; false leaves it to the caller. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const address = this.urls.resolve(req.headers.host, req.url ?? '/');
    if (!address) return false;
    socket.on('error', () => socket.destroy());
    const decided = this.decide(address, req, true);
    const go = (outcome: Outcome) => {
      if (outcome.kind === 'reject') return rejectUpgrade(socket, outcome.status, outcome.body, outcome.headers);
      this.splice(address, req, socket, head, outcome.route, outcome.credential);
    };
    if (decided instanceof Promise) {
      decided.then(go, (error: Error) => {
        this.logger.warn({ msg: 'session lookup failed', sessionId: address.sessionId, error: error.message });
        rejectUpgrade(socket, 503, jsonError(503, 'Service Unavailable', 'Session routing is unavailable; retry shortly'), { 'retry-after': '1' });
      });
    } else {
      go(decided);
    }
    return true;
  }

  onRevoked(sessionId: string): void {
    this.secrets.delete(sessionId);
    const open = this.sockets.get(sessionId);
    if (!open) return;
    this.logger.log({ msg: 'session ended: closing its WebSockets', sessionId, sockets: open.size });
    for (const socket of [...open]) socket.destroy();
    this.sockets.delete(sessionId);
  }

  private track(sessionId: string, spliced: SplicedSocket): void {
    let open = this.sockets.get(sessionId);
    if (!open) this.sockets.set(sessionId, (open = new Set()));
    open.add(spliced);
  }

  private untrack(sessionId: string, spliced: SplicedSocket): void {
    const open = this.sockets.get(sessionId);
    open?.delete(spliced);
    if (open?.size === 0) this.sockets.delete(sessionId);
  }

  onResync(): void {
    const ids = [...this.sockets.keys()];
    if (ids.length === 0) return;
    this.sessions.statuses(ids).then(
      (statuses) => {
        for (const id of ids) if (statuses.get(id) !== SessionStatus.Started) this.onRevoked(id);
      },
      (error: Error) => this.logger.warn({ msg: 'could not re-check open WebSockets', error: error.message }),
    );
  }

  /** Authentication and routing; synchronous when the route is cached (the steady state). */
  private decide(address: SessionAddress, req: IncomingMessage, upgrade: boolean): Outcome | Promise<Outcome> {
    const credential = findCredential(req.headers, req.url ?? '/', address.form, this.secure);
    if (!credential) return { kind: 'reject', status: 401, body: UNAUTHORIZED, headers: { 'www-authenticate': 'Bearer realm="berth"' } };
    const route = this.routes.get(address.sessionId);
    if (route instanceof Promise) return route.then((loaded) => this.authorize(address, req, upgrade, credential, loaded));
    return this.authorize(address, req, upgrade, credential, route);
  }

  private authorize(address: SessionAddress, req: IncomingMessage, upgrade: boolean, credential: Credential, route: SessionRoute | null): Outcome {
    // Unknown sessions are checked against a hash no token has: the same work, the same answer.
    const valid = tokenMatchesAny(credential.token, route?.accessTokenHashes.length ? route.accessTokenHashes : [NO_SUCH_TOKEN_HASH]) && route !== null;
    if (!valid || !route) return { kind: 'reject', status: 401, body: UNAUTHORIZED, headers: { 'www-authenticate': 'Bearer realm="berth"' } };
    if (route.status === SessionStatus.Pending || route.status === SessionStatus.Starting || (route.status === SessionStatus.Started && !route.upstreamUrl)) {
      return { kind: 'reject', status: 503, body: jsonError(503, 'Service Unavailable', 'The session is still starting; retry shortly'), headers: { 'retry-after': '1' } };
    }
    if (route.status !== SessionStatus.Started) {
      // Its token stopped working when it ended; say no more than for a wrong token.
      return { kind: 'reject', status: 401, body: UNAUTHORIZED };
    }
    if (!originAllowed(credential, req.headers, req.method ?? 'GET', upgrade, this.urls.origin(route.id))) {
      return { kind: 'reject', status: 403, body: jsonError(403, 'Forbidden', 'Cross-origin request refused') };
    }
    if (CONTROL_PATH.test(address.upstreamPath)) return { kind: 'reject', status: 404, body: jsonError(404, 'Not Found', 'Not found') };
    return { kind: 'forward', route, credential };
  }

  private respond(address: SessionAddress, req: IncomingMessage, res: ServerResponse, outcome: Outcome): void {
    if (outcome.kind === 'reject') return sendJson(res, outcome.status, outcome.body, outcome.headers);
    const { route, credential } = outcome;
    this.activity.touch(route.id);
    if (credential.source === 'query' && address.form === 'host' && (req.method === 'GET' || req.method === 'HEAD')) {
      // Swap the token for a host-only cookie and drop it from the address
      // bar, history and Referer: the same URL without it.
      res.writeHead(303, {
        location: withoutQueryToken(req.url ?? '/'),
        'set-cookie': sessionCookie(credential.token, this.secure),
        'cache-control': 'no-store',
        'referrer-policy': 'no-referrer',
        'content-length': '0',
      });
      res.end();
      return;
    }
    const target = this.target(address, req, route, credential);
    const rewrite = this.kinds.get(route.kind).gatewayRewrite?.(target.path, {
      wsBase: address.form === 'host' ? this.urls.origin(route.id).replace(/^http/, 'ws') : this.urls.pathUrl(route.id, '', 'ws'),
      query: credential.source === 'query' ? `?token=${encodeURIComponent(credential.token)}` : '',
    });
    if (rewrite) {
      void this.buffered.forward(req, res, target, rewrite, (failure) => this.badGateway(res, route.id, failure));
      return;
    }
    this.forwarder.http(req, res, target, (failure) => this.badGateway(res, route.id, failure));
  }

  private splice(address: SessionAddress, req: IncomingMessage, client: Duplex, head: Buffer, route: SessionRoute, credential: Credential): void {
    const sessionId = route.id;
    this.activity.touch(sessionId);
    this.forwarder.upgrade(
      req,
      client,
      head,
      this.target(address, req, route, credential),
      (upstream) => {
        // Plain TCP sockets move to the splicer process; anything else (a TLS socket, whose
        // state cannot move between processes) is pumped here.
        if (isPlainSocket(client) && isPlainSocket(upstream)) {
          this.track(sessionId, this.splicer.splice(sessionId, client, upstream));
          return;
        }
        const spliced: SplicedSocket = { destroy: () => close() };
        const touch = () => this.activity.touch(sessionId);
        const close = () => {
          client.destroy();
          upstream.destroy();
          this.untrack(sessionId, spliced);
        };
        for (const socket of [client, upstream] as Socket[]) {
          socket.setNoDelay?.(true);
          socket.on('data', touch);
          socket.on('error', close);
          socket.on('close', close);
        }
        (client as Socket).setKeepAlive?.(true, 30_000);
        this.track(sessionId, spliced);
        client.pipe(upstream);
        upstream.pipe(client);
      },
      (failure) => {
        this.logger.warn({ msg: 'upstream unreachable', sessionId, status: failure.status });
        rejectUpgrade(client, failure.status, jsonError(failure.status, failure.status === 504 ? 'Gateway Timeout' : 'Bad Gateway', failure.message));
      },
    );
  }

  private target(address: SessionAddress, req: IncomingMessage, route: SessionRoute, credential: Credential): ForwardTarget {
    const headers = forwardableHeaders(req, DROPPED_REQUEST_HEADERS);
    // Other cookies pass; the gateway's own never reaches the container.
    const cookies = address.form === 'host' ? cookieHeaderWithout(req.headers.cookie, cookieName(this.secure)) : (req.headers.cookie ?? null);
    if (cookies) headers.push('cookie', cookies);
    const priorFor = req.headers['x-forwarded-for'];
    const remote = req.socket.remoteAddress ?? '';
    headers.push(
      UPSTREAM_SECRET_HEADER,
      this.secretFor(route.id),
      'x-forwarded-for',
      // Appended only from loopback: anything else may have forged it.
      priorFor && isLoopback(remote) ? `${priorFor}, ${remote}` : remote,
      'x-forwarded-proto',
      this.forwardedProto,
      'x-forwarded-host',
      req.headers.host ?? '',
    );
    if (address.prefix) headers.push('x-forwarded-prefix', address.prefix);
    const path = credential.source === 'query' ? withoutQueryToken(address.upstreamPath) : address.upstreamPath;
    return { origin: route.upstreamUrl!, path, headers };
  }

  private secretFor(sessionId: string): string {
    let secret = this.secrets.get(sessionId);
    if (!secret) {
      if (this.secrets.size >= 100_000) this.secrets.clear();
      secret = upstreamSecret(this.config, sessionId);
      this.secrets.set(sessionId, secret);
    }
    return secret;
  }

  private badGateway(res: ServerResponse, sessionId: string, failure: UpstreamFailure): void {
    this.logger.warn({ msg: 'upstream unreachable', sessionId, status: failure.status });
    sendJson(res, failure.status, jsonError(failure.status, failure.status === 504 ? 'Gateway Timeout' : 'Bad Gateway', failure.message));
  }

  private failRequest(res: ServerResponse, address: SessionAddress, error: Error): void {
    this.logger.warn({ msg: 'session lookup failed', sessionId: address.sessionId, error: error.message });
    sendJson(res, 503, jsonError(503, 'Service Unavailable', 'Session routing is unavailable; retry shortly'), { 'retry-after': '1' });
  }
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

/** Answers a WebSocket upgrade with a plain HTTP error: nothing was proxied. */
function rejectUpgrade(socket: Duplex, status: number, body: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  let head = `HTTP/1.1 ${status} ${statusText(status)}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  socket.end(`${head}\r\n${body}`);
}

function statusText(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

/** A TCP socket whose handle can be handed to another process (not TLS, still open). */
function isPlainSocket(socket: Duplex): socket is Socket {
  return socket instanceof Socket && !(socket instanceof TLSSocket) && !socket.destroyed && !!(socket as unknown as { _handle?: unknown })._handle;
}
