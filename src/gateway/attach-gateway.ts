import type { Server } from 'node:http';
import { SessionGateway } from './session-gateway';

/**
 * Embedded mode (RUN_GATEWAY_IN_API): the API's own HTTP server serves
 * session traffic first and hands everything else to Nest, so one port and
 * one process carry both.
 */
export function attachGateway(server: Server, gateway: SessionGateway): void {
  const api = server.listeners('request') as ((...args: unknown[]) => void)[];
  server.removeAllListeners('request');
  server.on('request', (req, res) => {
    if (gateway.handleRequest(req, res)) return;
    for (const listener of api) listener.call(server, req, res);
  });
  server.on('upgrade', (req, socket, head) => {
    if (!gateway.handleUpgrade(req, socket, head)) socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
}
