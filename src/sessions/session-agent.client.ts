import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import type { Readable } from 'node:stream';
import { Agent, Dispatcher } from 'undici';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { BerthConfig } from '../config/berth-config';
import { SessionStatus } from './session-status';
import { Session } from './session.entity';
import { UPSTREAM_SECRET_HEADER, upstreamSecret } from './session-secrets';

export interface AgentRequest {
  method: Dispatcher.HttpMethod;
  /** A control path of the agent, `/.berth/...` (docs/SESSION-CONTAINERS.md). */
  path: string;
  headers?: Record<string, string>;
  body?: Readable | Buffer | string | null;
  /** Longest wait for the agent's answer (headers). */
  timeoutMs?: number;
}

/**
 * The API's calls to a session's agent (screenshots, downloads, uploads,
 * binding a pooled container): straight to the address the platform
 * assigned, with the session's upstream secret, never through the gateway
 * (whose users may not reach `/.berth/`).
 */
@Injectable()
export class SessionAgentClient implements OnApplicationShutdown {
  private readonly agent = new Agent({ connections: 8, keepAliveTimeout: 10_000, connect: { timeout: 3000 } });

  constructor(private readonly config: BerthConfig) {}

  async onApplicationShutdown(): Promise<void> {
    await this.agent.close();
  }

  /** Requires a started session; any HTTP answer is returned for the caller to read or stream. */
  async request(session: Session, request: AgentRequest): Promise<Dispatcher.ResponseData> {
    if (session.status !== SessionStatus.Started || !session.upstreamUrl) {
      throw new DomainException(ErrorCode.SessionNotLive, `Session ${session.id} is ${session.status}, not started`);
    }
    return this.send(session.upstreamUrl, upstreamSecret(this.config, session.id), request);
  }

  /** A call with an explicit address and secret (a pooled container before it is bound). */
  async send(origin: string, secret: string, request: AgentRequest): Promise<Dispatcher.ResponseData> {
    try {
      return await this.agent.request({
        origin,
        path: request.path,
        method: request.method,
        headers: { ...request.headers, [UPSTREAM_SECRET_HEADER]: secret },
        body: request.body ?? null,
        headersTimeout: request.timeoutMs ?? 30_000,
        bodyTimeout: 120_000,
      });
    } catch (error) {
      throw new DomainException(ErrorCode.UpstreamUnavailable, `The session's container did not answer (${(error as Error).message})`);
    }
  }
}
