import { AddressInfo, Server, Socket, createConnection, createServer } from 'node:net';

/**
 * A proxy in front of Postgres, Redis (TCP on loopback) or the Docker engine
 * (a unix socket) that a test can cut and restore, to watch Berth meet a real
 * outage (connections reset, new ones refused) without stopping the shared
 * services.
 */
export class FaultProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;
  private listenOn: number | string = 0;

  /** @param target a TCP port on 127.0.0.1, or the path of a unix socket */
  constructor(private readonly target: number | string) {}

  /** Listens on `listenOn`: a TCP port on 127.0.0.1 (0 = any free one) or a unix socket path. */
  async start(listenOn: number | string = 0): Promise<number> {
    this.listenOn = listenOn;
    this.server = createServer((client) => {
      const upstream =
        typeof this.target === 'number' ? createConnection(this.target, '127.0.0.1') : createConnection({ path: this.target });
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      if (typeof listenOn === 'number') this.server!.listen(listenOn, '127.0.0.1', resolve);
      else this.server!.listen(listenOn, resolve);
    });
    if (typeof listenOn === 'number') this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  /** Resets every open connection and refuses new ones. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async restore(): Promise<void> {
    if (!this.server) await this.start(typeof this.listenOn === 'number' ? this.port : this.listenOn);
  }
}
