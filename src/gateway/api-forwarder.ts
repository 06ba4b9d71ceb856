import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { BerthConfig } from '../config/berth-config';
import { UpstreamFailure, UpstreamForwarder, forwardableHeaders } from './upstream-forwarder';

const DROPPED = new Set(['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip']);

/**
 * A standalone gateway owns PUBLIC_URL's port, so whatever is not session
 * traffic (the REST API, /docs, /health, callbacks) goes on to the API
 * processes. Bodies stream both ways and never time out mid-stream (event
 * streams stay open for as long as the client listens).
 */
@Injectable()
export class ApiForwarder implements OnApplicationShutdown {
  private readonly forwarder = new UpstreamForwarder({ connectTimeoutMs: 3000, headersTimeoutMs: 120_000, bodyTimeoutMs: 0 });
  private readonly proto: string;

  constructor(private readonly config: BerthConfig) {
    this.proto = new URL(config.http.publicUrl).protocol.replace(':', '');
  }

  async onApplicationShutdown(): Promise<void> {
    await this.forwarder.close();
  }

  http(req: IncomingMessage, res: ServerResponse): void {
    this.forwarder.http(req, res, this.target(req), (failure) => {
      const body = JSON.stringify({ statusCode: failure.status, error: 'Bad Gateway', message: apiDownMessage(failure) });
      res.writeHead(failure.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'retry-after': '1' });
      res.end(body);
    });
  }

  /** The API serves no WebSockets: anything else upgraded here is not Berth's. */
  upgrade(_req: IncomingMessage, socket: Duplex): void {
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  }

  private target(req: IncomingMessage) {
    const headers = forwardableHeaders(req, DROPPED);
    headers.push('x-forwarded-for', req.socket.remoteAddress ?? '', 'x-forwarded-proto', this.proto, 'x-forwarded-host', req.headers.host ?? '');
    return { origin: this.config.gateway.apiUpstream, path: req.url ?? '/', headers };
  }
}

function apiDownMessage(failure: UpstreamFailure): string {
  return failure.status === 504 ? 'The API did not answer in time; retry shortly' : 'The API is not reachable; retry shortly';
}
