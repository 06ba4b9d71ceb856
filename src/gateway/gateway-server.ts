import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Server, createServer } from 'node:http';
import { BerthConfig } from '../config/berth-config';
import { ApiForwarder } from './api-forwarder';
import { SessionGateway } from './session-gateway';

/**
 * The gateway role's HTTP server (dist/src/gateway.js): session traffic to
 * SessionGateway, everything else to the API. Running it apart from the API
 * means restarting or scaling the API never drops a user's terminal or CDP
 * WebSocket, and the gateway needs no Redis, queue or platform SDK.
 */
@Injectable()
export class GatewayServer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(GatewayServer.name);
  readonly server: Server;

  constructor(
    private readonly gateway: SessionGateway,
    private readonly api: ApiForwarder,
    private readonly config: BerthConfig,
  ) {
    this.server = createServer({ requestTimeout: 0, keepAliveTimeout: 65_000, headersTimeout: 60_000 }, (req, res) => {
      if (!this.gateway.handleRequest(req, res)) this.api.http(req, res);
    });
    this.server.on('upgrade', (req, socket, head) => {
      if (!this.gateway.handleUpgrade(req, socket, head)) this.api.upgrade(req, socket);
    });
    this.server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    const { host, port } = this.config.gateway;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.logger.log({ msg: 'Berth gateway listening', host, port, api: this.config.gateway.apiUpstream });
  }

  /** Stop accepting, let in-flight requests finish; SessionGateway closes the WebSockets. */
  async beforeApplicationShutdown(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address ? address.port : this.config.gateway.port;
  }
}
