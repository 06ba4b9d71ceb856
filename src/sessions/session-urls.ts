import { Injectable } from '@nestjs/common';
import { BerthConfig } from '../config/berth-config';

/** Path-form prefix: `{PUBLIC_URL}/s/{id}/...` reaches session `id` for programs that cannot resolve per-session host names. */
export const PATH_FORM_PREFIX = '/s/';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const PATH_FORM = new RegExp(`^${PATH_FORM_PREFIX}(${UUID})(?=/|\\?|$)`, 'i');

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Where a request for a session came in: its own origin (pages, cookies allowed) or the path form (programs, no cookies). */
export type SessionAddressForm = 'host' | 'path';

export interface SessionAddress {
  sessionId: string;
  form: SessionAddressForm;
  /** The path (and query) the session's agent should see: the path form's prefix removed. */
  upstreamPath: string;
  /** What was removed, for X-Forwarded-Prefix ('' for the host form). */
  prefix: string;
}

/**
 * The public addresses of sessions, built only from configuration (never from
 * a request's Host header), and the reverse: which session a request names.
 * Shared by the API (URLs in responses) and the gateway (routing).
 */
@Injectable()
export class SessionUrls {
  private readonly scheme: 'http' | 'https';
  private readonly hostPattern: RegExp;
  private readonly publicUrl: string;
  private readonly template: string;

  constructor(config: BerthConfig) {
    const template = config.gateway.sessionUrlTemplate;
    this.publicUrl = config.http.publicUrl;
    this.scheme = template.startsWith('https:') ? 'https' : 'http';
    const hostname = new URL(template.replace('{id}', '00000000-0000-0000-0000-000000000000')).hostname;
    const [before, after] = hostname.split('00000000-0000-0000-0000-000000000000');
    this.hostPattern = new RegExp(`^${escapeRegExp(before)}(${UUID})${escapeRegExp(after)}$`, 'i');
    this.template = template;
  }

  /** Pages are served over TLS: cookies get `Secure` and the `__Host-` prefix. */
  get secure(): boolean {
    return this.scheme === 'https';
  }

  /** `http://{id}.localhost:3000`: the origin of the session's own pages. */
  origin(sessionId: string): string {
    return this.template.replace('{id}', sessionId.toLowerCase());
  }

  /** A page of the session on its own origin (what people open). */
  pageUrl(sessionId: string, path = '/'): string {
    return `${this.origin(sessionId)}${path}`;
  }

  /** `{PUBLIC_URL}/s/{id}` in http(s) or ws(s): what programs use. */
  pathUrl(sessionId: string, path = '/', scheme: 'http' | 'ws' = 'http'): string {
    const base = `${this.publicUrl}${PATH_FORM_PREFIX}${sessionId.toLowerCase()}${path}`;
    return scheme === 'ws' ? base.replace(/^http/, 'ws') : base;
  }

  /**
   * Which session a request addresses, if any: the Host header matched
   * against the template (the port is ignored: a proxy in front may change
   * it), else the path form. Null means "not session traffic".
   */
  resolve(host: string | undefined, url: string): SessionAddress | null {
    const hostname = (host ?? '').replace(/:\d+$/, '');
    const byHost = this.hostPattern.exec(hostname);
    if (byHost) return { sessionId: byHost[1].toLowerCase(), form: 'host', upstreamPath: url || '/', prefix: '' };
    const byPath = PATH_FORM.exec(url);
    if (!byPath) return null;
    const rest = url.slice(byPath[0].length);
    return {
      sessionId: byPath[1].toLowerCase(),
      form: 'path',
      upstreamPath: rest.startsWith('/') ? rest : `/${rest}`,
      prefix: byPath[0],
    };
  }
}
