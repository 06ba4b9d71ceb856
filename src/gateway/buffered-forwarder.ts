import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, Dispatcher } from 'undici';
import { ForwardTarget, UpstreamFailure } from './upstream-forwarder';

/** Small responses a kind rewrites (DevTools discovery JSON); anything larger is refused rather than buffered. */
const MAX_BODY_BYTES = 1024 * 1024;

export type BodyRewrite = (body: Buffer) => Buffer;

/**
 * Forwards a request whose response must be rewritten before it reaches the
 * client (it is read whole, bounded). Used only for the few small documents a
 * kind rewrites, so the streaming path stays free of that cost.
 */
export class BufferedForwarder {
  private readonly agent = new Agent({ connections: 4, keepAliveTimeout: 10_000, connect: { timeout: 5000 }, headersTimeout: 30_000, bodyTimeout: 30_000 });

  async forward(req: IncomingMessage, res: ServerResponse, target: ForwardTarget, rewrite: BodyRewrite, onFailure: (failure: UpstreamFailure) => void): Promise<void> {
    let response: Dispatcher.ResponseData;
    try {
      response = await this.agent.request({ origin: target.origin, path: target.path, method: req.method as Dispatcher.HttpMethod, headers: target.headers });
    } catch (error) {
      onFailure({ status: (error as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT' ? 504 : 502, message: 'The session is not reachable' });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        response.body.destroy();
        onFailure({ status: 502, message: 'The session answered more than the gateway rewrites' });
        return;
      }
      chunks.push(chunk as Buffer);
    }
    let body = Buffer.concat(chunks);
    if (response.statusCode === 200) body = rewrite(body);
    const headers: Record<string, string> = { 'content-length': String(body.length), 'cache-control': 'no-store' };
    const type = response.headers['content-type'];
    if (typeof type === 'string') headers['content-type'] = type;
    res.writeHead(response.statusCode, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
