import { Injectable } from '@nestjs/common';
import type { Readable } from 'node:stream';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { BerthConfig } from '../config/berth-config';
import { SessionAgentClient } from '../sessions/session-agent.client';
import { SessionKind } from '../sessions/session-status';
import { SessionsService } from '../sessions/sessions.service';
import { Principal } from '../tenancy/principal';

/** A file in the session's downloads, as the agent lists it. */
export interface DownloadedFile {
  name: string;
  size: number;
  modified: string;
}

/** A stream from the agent with the headers worth passing on. */
export interface AgentStream {
  body: Readable;
  headers: Record<string, string>;
}

/** File names the agent accepts; anything that could climb out of its directory is refused here first. */
const FILE_NAME = /^(?!\.)[^/\\\0-\x1f]{1,255}$/;

export function assertFileName(name: string): void {
  if (!FILE_NAME.test(name) || name === '.' || name === '..') {
    throw new DomainException(ErrorCode.InvalidRequest, 'file name must be 1-255 characters without "/", "\\\\", control characters or a leading "."');
  }
}

/**
 * What a browser session holds besides its pages: a screenshot of the
 * current page, the files it downloaded, files uploaded into it. Every call
 * goes to the session's agent with the upstream secret.
 */
@Injectable()
export class BrowserFilesService {
  constructor(
    private readonly sessions: SessionsService,
    private readonly agent: SessionAgentClient,
    private readonly config: BerthConfig,
  ) {}

  async screenshot(principal: Principal, id: string): Promise<AgentStream> {
    return this.stream(principal, id, '/.berth/screenshot', 'could not take a screenshot');
  }

  async downloads(principal: Principal, id: string): Promise<DownloadedFile[]> {
    const session = await this.sessions.get(principal, id, SessionKind.Browser);
    const response = await this.agent.request(session, { method: 'GET', path: '/.berth/downloads' });
    if (response.statusCode !== 200) throw await this.agentError(response.statusCode, response.body, 'could not list downloads');
    return (await response.body.json()) as DownloadedFile[];
  }

  async download(principal: Principal, id: string, name: string): Promise<AgentStream> {
    assertFileName(name);
    return this.stream(principal, id, `/.berth/downloads/${encodeURIComponent(name)}`, `could not read download ${name}`);
  }

  /** Streams `body` into the session's uploads; returns the path to hand to a file input. */
  async upload(principal: Principal, id: string, name: string, body: Readable, length?: number): Promise<{ name: string; path: string; size: number }> {
    assertFileName(name);
    const max = this.config.browser.maxUploadBytes;
    if (length !== undefined && length > max) throw new DomainException(ErrorCode.PayloadTooLarge, `uploads are limited to ${max} bytes (BROWSER_MAX_UPLOAD_MB)`);
    const session = await this.sessions.get(principal, id, SessionKind.Browser);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (length !== undefined) headers['content-length'] = String(length);
    const response = await this.agent.request(session, { method: 'PUT', path: `/.berth/uploads/${encodeURIComponent(name)}`, headers, body });
    if (response.statusCode === 413) {
      await response.body.dump();
      throw new DomainException(ErrorCode.PayloadTooLarge, `uploads are limited to ${max} bytes (BROWSER_MAX_UPLOAD_MB)`);
    }
    if (response.statusCode !== 200 && response.statusCode !== 201) throw await this.agentError(response.statusCode, response.body, 'upload failed');
    const stored = (await response.body.json()) as { path: string; size?: number };
    return { name, path: stored.path, size: stored.size ?? length ?? 0 };
  }

  private async stream(principal: Principal, id: string, path: string, what: string): Promise<AgentStream> {
    const session = await this.sessions.get(principal, id, SessionKind.Browser);
    const response = await this.agent.request(session, { method: 'GET', path });
    if (response.statusCode !== 200) throw await this.agentError(response.statusCode, response.body, what);
    const headers: Record<string, string> = {};
    for (const name of ['content-type', 'content-length', 'content-disposition', 'last-modified']) {
      const value = response.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    return { body: response.body, headers };
  }

  /** The agent's 4xx are the caller's problem (a missing file, a bad name); anything else is the session's. */
  private async agentError(status: number, body: { text(): Promise<string> }, what: string): Promise<DomainException> {
    const detail = (await body.text().catch(() => '')).slice(0, 300);
    let message = detail;
    try {
      message = (JSON.parse(detail) as { error?: string; message?: string }).message ?? (JSON.parse(detail) as { error?: string }).error ?? detail;
    } catch {
      // plain text
    }
    if (status === 404) return new DomainException(ErrorCode.NotFound, `${what}: not found`);
    if (status === 400) return new DomainException(ErrorCode.InvalidRequest, `${what}: ${message}`);
    return new DomainException(ErrorCode.UpstreamUnavailable, `${what}: the session answered ${status}${message ? ` (${message})` : ''}`);
  }
}
