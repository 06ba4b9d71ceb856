/**
 * DevTools discovery documents (/json/version, /json/list, /json/new) name
 * WebSocket URLs for clients to connect to next. Coming from inside the
 * container, they name the agent's address; through the gateway they must
 * name the gateway, built from configuration (never from the request's Host
 * header, which proxies rewrite: browserless#4831, docker-selenium#2889).
 * Pure: unit-tested.
 */

/** Upstream paths whose JSON is a discovery document. */
export const DISCOVERY_PATH = /^\/json(\/(version|list|new))?\/?(\?|$)/;

export interface DiscoveryBase {
  /** `ws://gateway/s/<id>` or `ws://<id>.localhost:3000`: what replaces the agent's origin. */
  wsBase: string;
  /** Appended to rewritten WebSocket URLs (`?token=…` when the caller authenticated that way). */
  query: string;
}

interface Target {
  webSocketDebuggerUrl?: unknown;
  devtoolsFrontendUrl?: unknown;
  [key: string]: unknown;
}

export function rewriteDiscovery(body: Buffer, base: DiscoveryBase): Buffer {
  let document: unknown;
  try {
    document = JSON.parse(body.toString('utf8'));
  } catch {
    return body; // not JSON: pass through as it is
  }
  const rewriteOne = (target: Target): Target => {
    const out = { ...target };
    if (typeof out.webSocketDebuggerUrl === 'string') out.webSocketDebuggerUrl = publicWebSocketUrl(out.webSocketDebuggerUrl, base);
    if (typeof out.devtoolsFrontendUrl === 'string') out.devtoolsFrontendUrl = rewriteFrontendUrl(out.devtoolsFrontendUrl, base);
    return out;
  };
  const rewritten = Array.isArray(document) ? document.map((entry) => (entry && typeof entry === 'object' ? rewriteOne(entry as Target) : entry)) : rewriteOne(document as Target);
  return Buffer.from(JSON.stringify(rewritten));
}

/** `ws://anything/devtools/page/X` -> `<wsBase>/devtools/page/X<query>`. */
function publicWebSocketUrl(url: string, base: DiscoveryBase): string {
  const path = devtoolsPath(url);
  return path ? `${base.wsBase}${path}${base.query}` : url;
}

/** The frontend URL carries the socket in a `ws=` (or `wss=`) parameter, without scheme. */
function rewriteFrontendUrl(url: string, base: DiscoveryBase): string {
  const match = /([?&])(wss?)=([^&#]*)/.exec(url);
  if (!match) return url;
  const path = devtoolsPath(`ws://${decodeURIComponent(match[3])}`);
  if (!path) return url;
  const secure = base.wsBase.startsWith('wss:');
  const hostAndPath = `${base.wsBase.replace(/^wss?:\/\//, '')}${path}${base.query}`;
  return `${url.slice(0, match.index)}${match[1]}${secure ? 'wss' : 'ws'}=${encodeURIComponent(hostAndPath)}${url.slice(match.index + match[0].length)}`;
}

function devtoolsPath(url: string): string | null {
  try {
    const parsed = new URL(url);
    return parsed.pathname.startsWith('/devtools/') ? parsed.pathname : null;
  } catch {
    return null;
  }
}
