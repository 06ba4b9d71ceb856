import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Agent, Dispatcher } from 'undici';

/**
 * Moves bytes between a client and an upstream: HTTP requests with undici
 * (keep-alive connection pools per upstream, streaming both ways with
 * backpressure), WebSocket upgrades by handing over the two raw sockets once
 * the upstream answered 101, so frames are never parsed.
 *
 * undici rather than a proxy library: on this 2-core machine, forwarding 1 KiB
 * responses at 50 connections, undici's dispatcher ran ~2.5x the requests/s of
 * http-proxy-3 with a keep-alive agent and ~4x configurable-http-proxy, with
 * about half their p99 (bench/gateway.ts compares them in one run; docs/BENCHMARKS.md).
 */

/** Hop-by-hop headers (RFC 9110 §7.6.1) and ones undici sets itself: never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'http2-settings',
]);

export interface ForwardTarget {
  /** `http://host:port` of the upstream. */
  origin: string;
  /** Path and query the upstream sees. */
  path: string;
  /** Request headers for the upstream, as a flat [name, value, ...] list (already filtered by the caller). */
  headers: string[];
}

export interface UpstreamFailure {
  status: 502 | 504;
  message: string;
}

/**
 * Copies a request's headers minus hop-by-hop ones, those the Connection
 * header names, and any in `drop` (lower-case). Keeps the client's order,
 * case and repeated headers.
 */
export function forwardableHeaders(req: IncomingMessage, drop: ReadonlySet<string>): string[] {
  const named = new Set<string>();
  const connection = req.headers.connection;
  if (connection) for (const token of connection.split(',')) named.add(token.trim().toLowerCase());
  const raw = req.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (HOP_BY_HOP.has(name) || named.has(name) || drop.has(name)) continue;
    out.push(raw[i], raw[i + 1]);
  }
  return out;
}

function responseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const named = new Set<string>();
  const connection = headers.connection;
  if (typeof connection === 'string') for (const token of connection.split(',')) named.add(token.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}

function failureOf(error: Error & { code?: string }): UpstreamFailure {
  if (error.code === 'UND_ERR_HEADERS_TIMEOUT' || error.code === 'UND_ERR_CONNECT_TIMEOUT') {
    return { status: 504, message: 'The session did not answer in time' };
  }
  return { status: 502, message: 'The session is not reachable' };
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

export interface ForwarderOptions {
  /** Time to connect to the upstream. */
  connectTimeoutMs: number;
  /** Time from sending the request to the upstream's response headers. */
  headersTimeoutMs: number;
  /** Longest silence within a response body; 0 for none (event streams). */
  bodyTimeoutMs: number;
}

export class UpstreamForwarder {
  private readonly agent: Agent;

  constructor(private readonly options: ForwarderOptions) {
    this.agent = new Agent({
      // Per upstream: a session is one agent, so this bounds what one session can hold open.
      connections: 64,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.bodyTimeoutMs,
      connect: { timeout: options.connectTimeoutMs, noDelay: true },
    });
  }

  /**
   * Streams `req` to the upstream and its response back to `res`. When the
   * upstream cannot be reached or does not answer, `onFailure` writes the
   * error response (if nothing was sent yet); a failure mid-body ends `res`.
   */
  http(req: IncomingMessage, res: ServerResponse, target: ForwardTarget, onFailure: (failure: UpstreamFailure) => void): void {
    let controller: Dispatcher.DispatchController | null = null;
    let done = false;
    const abortOnClientGone = () => {
      if (!done) controller?.abort(new Error('client went away'));
    };
    res.once('close', abortOnClientGone);
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(ctl) {
        controller = ctl;
      },
      onResponseStart(ctl, statusCode, headers, statusMessage) {
        if (statusCode < 200) return; // 1xx: Node's server answers Expect itself
        res.writeHead(statusCode, statusMessage, responseHeaders(headers));
      },
      onResponseData(ctl, chunk) {
        if (!res.write(chunk)) {
          ctl.pause();
          res.once('drain', () => ctl.resume());
        }
      },
      onResponseEnd() {
        done = true;
        res.off('close', abortOnClientGone);
        res.end();
      },
      onResponseError(_ctl, error) {
        done = true;
        res.off('close', abortOnClientGone);
        if (res.headersSent) {
          res.destroy(error);
          return;
        }
        if (!res.destroyed) onFailure(failureOf(error as Error & { code?: string }));
      },
    };
    this.agent.dispatch(
      {
        origin: target.origin,
        path: target.path,
        method: req.method as Dispatcher.HttpMethod,
        headers: target.headers,
        body: hasBody(req) ? req : null,
      },
      handler,
    );
  }

  /**
   * Sends the upgrade request upstream. On 101 writes the upstream's 101 to
   * the client and calls `onOpen` with the upstream socket: from then on the
   * caller pipes raw bytes. Any other answer is relayed as it is (status,
   * headers, body) and the client socket closed; an unreachable upstream gets
   * `onFailure`.
   */
  upgrade(
    req: IncomingMessage,
    client: Duplex,
    head: Buffer,
    target: ForwardTarget,
    onOpen: (upstream: Duplex) => void,
    onFailure: (failure: UpstreamFailure) => void,
  ): void {
    let relayed = false;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onRequestUpgrade(_ctl, statusCode, headers, upstream) {
        if (client.destroyed) {
          upstream.destroy();
          return;
        }
        let response = `HTTP/1.1 ${statusCode} Switching Protocols\r\n`;
        for (const [name, value] of Object.entries(headers)) {
          if (value === undefined) continue;
          for (const item of Array.isArray(value) ? value : [value]) response += `${name}: ${item}\r\n`;
        }
        client.write(`${response}\r\n`);
        // Bytes the client sent right after its upgrade request belong to the upstream.
        if (head.length > 0) upstream.write(head);
        onOpen(upstream);
      },
      // The upstream refused the upgrade (401, 404, 503...): relay its answer.
      onResponseStart(_ctl, statusCode, headers, statusMessage) {
        relayed = true;
        let response = `HTTP/1.1 ${statusCode} ${statusMessage ?? ''}\r\n`;
        for (const [name, value] of Object.entries(responseHeaders(headers))) {
          for (const item of Array.isArray(value) ? value : [value]) response += `${name}: ${item}\r\n`;
        }
        client.write(`${response}connection: close\r\n\r\n`);
      },
      onResponseData(_ctl, chunk) {
        client.write(chunk);
      },
      onResponseEnd() {
        client.end();
      },
      onResponseError(_ctl, error) {
        if (relayed) client.destroy();
        else onFailure(failureOf(error as Error & { code?: string }));
      },
    };
    this.agent.dispatch(
      {
        origin: target.origin,
        path: target.path,
        method: 'GET',
        headers: target.headers,
        upgrade: req.headers.upgrade ?? 'websocket',
      },
      handler,
    );
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
