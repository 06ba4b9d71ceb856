import { Injectable, Logger } from '@nestjs/common';
import Docker from 'dockerode';
import { BerthConfig } from '../../config/berth-config';
import { SessionKind } from '../../sessions/session-status';
import {
  ContainerPlatform,
  ContainerRef,
  ContainerStatus,
  CreatedContainer,
  ExitHandlers,
  LABELS,
  ManagedContainer,
  ManagedVolume,
  PersistentVolume,
  PlatformError,
  SessionContainerSpec,
  StartedContainer,
  sessionContainerName,
} from '../container-platform';
import { OpenStream, keepWatching } from '../keep-watching';
import { ConcurrencyLimit } from './concurrency-limit';
import { PublishedPort, buildContainerOptions, isLoopback } from './docker-container-options';

interface DockerApiError {
  statusCode?: number;
  code?: string;
  message?: string;
  json?: { message?: string };
}

const MAX_CREATE_ATTEMPTS = 8;

interface SessionNetwork {
  env: Record<string, string>;
  upstreamUrl: string;
  publish?: PublishedPort;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


/**
 * Runs sessions as hardened Docker containers. The only file that knows
 * dockerode: everything else sees the ContainerPlatform contract.
 */
/** How soon a broken engine event stream is reconnected. */
const EVENT_RETRY_MS = 1000;

@Injectable()
export class DockerPlatform implements ContainerPlatform {
  readonly name = 'docker' as const;
  readonly requiresHostPort: boolean;
  private readonly logger = new Logger(DockerPlatform.name);
  private readonly creations: ConcurrencyLimit;
  private readonly docker: Docker;

  constructor(private readonly config: BerthConfig) {
    const { socketPath, apiVersion } = config.platform.docker;
    this.docker = new Docker({ socketPath, version: apiVersion });
    this.creations = new ConcurrencyLimit(config.platform.docker.createConcurrency);
    const { network, publishHost } = config.platform.docker;
    this.requiresHostPort = network === 'host' || publishHost !== '';
  }

  async start(spec: SessionContainerSpec, onCreated?: (created: CreatedContainer) => Promise<void>, attempt = 1): Promise<StartedContainer> {
    const name = this.containerName(spec);
    const network = this.networkOf(name, spec);
    const options = buildContainerOptions(name, spec, this.config, network.env, network.publish);
    for (const volume of spec.volumes) await this.ensureVolume(volume);
    let adopted = false;
    let container: Docker.Container;
    try {
      container = await this.creations.run(() => this.docker.createContainer(options));
    } catch (error) {
      if (statusOf(error) !== 409) throw toPlatformError(error, `creating container ${name}`, spec.image);
      // The name is taken: an earlier delivery of this job (or another worker)
      // created it. Adopt it rather than create a second one.
      const adoptedContainer = await this.adopt(name, spec.sessionId);
      if (!adoptedContainer) {
        // The name is reserved but the container is not inspectable yet (a
        // concurrent create in flight), or a dead predecessor is being removed:
        // try again shortly, a bounded number of times.
        if (attempt >= MAX_CREATE_ATTEMPTS) throw new PlatformError(`container name ${name} stayed busy; will retry`, true);
        await sleep(50 * attempt);
        return this.start(spec, onCreated, attempt + 1);
      }
      container = adoptedContainer;
      adopted = true;
    }
    const created: CreatedContainer = { containerId: container.id, containerName: name, state: { containerName: name, containerId: container.id } };
    await onCreated?.(created);
    try {
      await container.start();
    } catch (error) {
      // 304: already running (adopted). Anything else is a real failure.
      if (statusOf(error) !== 304) throw toPlatformError(error, `starting container ${name}`, spec.image);
    }
    return { ...created, adopted };
  }

  upstreamUrlFor(spec: SessionContainerSpec): string {
    return this.networkOf(this.containerName(spec), spec).upstreamUrl;
  }

  async stop(ref: ContainerRef): Promise<void> {
    const name = this.nameOf(ref);
    const container = this.docker.getContainer(name);
    try {
      // No `t`: the engine waits the container's own StopTimeout (its kind's stop grace).
      await container.stop();
    } catch (error) {
      const status = statusOf(error);
      // 304 already stopped, 404 already gone: both are what we want.
      if (status === 404) return;
      if (status !== 304) this.logger.warn({ msg: 'graceful stop failed, forcing removal', sessionId: ref.sessionId, error: messageOf(error) });
    }
    try {
      await container.remove({ force: true, v: true });
    } catch (error) {
      const status = statusOf(error);
      // 404 gone; 409 "removal already in progress" from a concurrent teardown.
      if (status === 404 || status === 409) return;
      throw toPlatformError(error, `removing container ${name}`);
    }
  }

  async poll(ref: ContainerRef): Promise<ContainerStatus> {
    const name = this.nameOf(ref);
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(name).inspect();
    } catch (error) {
      if (statusOf(error) === 404) return { state: 'gone' };
      throw toPlatformError(error, `inspecting container ${name}`);
    }
    if (info.State.Running || info.State.Restarting) return { state: 'running' };
    if (info.State.Status === 'created') return { state: 'running' };
    return { state: 'exited', exitCode: info.State.ExitCode, reason: await this.exitReason(name, info) };
  }

  async listManaged(): Promise<ManagedContainer[]> {
    try {
      const containers = await this.docker.listContainers({
        all: true,
        filters: { label: [`${LABELS.managedBy}=berth`, `${LABELS.instance}=${this.config.platform.instance}`] },
      });
      return containers.map((container) => ({
        sessionId: container.Labels[LABELS.sessionId],
        kind: container.Labels[LABELS.kind] as SessionKind,
        containerName: (container.Names[0] ?? '').replace(/^\//, ''),
        createdAt: new Date(container.Created * 1000),
        running: container.State === 'running' || container.State === 'restarting' || container.State === 'created',
      }));
    } catch (error) {
      throw toPlatformError(error, 'listing containers');
    }
  }

  async removeVolume(name: string): Promise<'removed' | 'gone' | 'in-use'> {
    try {
      await this.docker.getVolume(name).remove();
      return 'removed';
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) return 'gone';
      if (status === 409) return 'in-use';
      throw toPlatformError(error, `removing volume ${name}`);
    }
  }

  async listManagedVolumes(): Promise<ManagedVolume[]> {
    try {
      const { Volumes } = await this.docker.listVolumes({
        filters: { label: [`${LABELS.managedBy}=berth`, `${LABELS.instance}=${this.config.platform.instance}`] },
      });
      return (Volumes ?? []).map((volume) => ({
        name: volume.Name,
        purpose: volume.Labels?.[LABELS.volumePurpose] as ManagedVolume['purpose'],
        createdAt: new Date((volume as { CreatedAt?: string }).CreatedAt ?? 0),
      }));
    } catch (error) {
      throw toPlatformError(error, 'listing volumes');
    }
  }

  /** Creates the named volume with Berth's labels; an existing one is kept as it is (its data is the point). */
  private async ensureVolume(volume: PersistentVolume): Promise<void> {
    try {
      await this.docker.createVolume({
        Name: volume.name,
        Labels: { [LABELS.managedBy]: 'berth', [LABELS.instance]: this.config.platform.instance, [LABELS.volumePurpose]: volume.purpose },
      });
    } catch (error) {
      throw toPlatformError(error, `creating volume ${volume.name}`);
    }
  }

  /**
   * The engine's event stream, filtered to this install's containers dying.
   * A break (the engine restarting, which stops every container) is retried
   * every second; each reconnection is a resync.
   */
  watchExits(handlers: ExitHandlers): () => void {
    const open: OpenStream = async (ended) => {
      const events = (await this.docker.getEvents({
        filters: {
          type: ['container'],
          event: ['die'],
          label: [`${LABELS.managedBy}=berth`, `${LABELS.instance}=${this.config.platform.instance}`],
        },
      })) as NodeJS.ReadableStream & { destroy(): void };
      let pending = '';
      events.on('data', (chunk: Buffer) => {
        pending += chunk.toString('utf8');
        for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (!line) continue;
          try {
            const event = JSON.parse(line) as { Actor?: { Attributes?: Record<string, string> } };
            const sessionId = event.Actor?.Attributes?.[LABELS.sessionId];
            if (sessionId) handlers.onExit(sessionId);
          } catch {
            this.logger.warn({ msg: 'unreadable Docker event skipped', line: line.slice(0, 200) });
          }
        }
      });
      for (const event of ['end', 'close', 'error']) events.on(event, ended);
      return () => events.destroy();
    };
    return keepWatching(open, () => handlers.onResync(), { retryMs: EVENT_RETRY_MS, logger: this.logger, what: 'Docker event stream' });
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (error) {
      throw toPlatformError(error, 'pinging the Docker engine');
    }
  }

  /**
   * Where the agent listens and where the gateway reaches it. Host
   * networking: the port Berth allocated (spec.hostPort) on
   * DOCKER_SESSION_HOST. A named network: the fixed port, by container name,
   * or published at the allocated port on DOCKER_PUBLISH_HOST.
   */
  private networkOf(containerName: string, spec: SessionContainerSpec): SessionNetwork {
    const { network, sessionHost, publishHost, containerPort } = this.config.platform.docker;
    if (this.requiresHostPort && !spec.hostPort) throw new PlatformError('this network mode needs a host port allocated by Berth', false);
    if (network === 'host') {
      return {
        env: { BERTH_LISTEN_HOST: isLoopback(sessionHost) ? '127.0.0.1' : '0.0.0.0', BERTH_PORT: String(spec.hostPort) },
        upstreamUrl: `http://${sessionHost}:${spec.hostPort}`,
      };
    }
    const env = { BERTH_LISTEN_HOST: '0.0.0.0', BERTH_PORT: String(containerPort) };
    if (publishHost) return { env, upstreamUrl: `http://${publishHost}:${spec.hostPort}`, publish: { host: publishHost, port: spec.hostPort! } };
    return { env, upstreamUrl: `http://${containerName}:${containerPort}` };
  }

  private containerName(spec: SessionContainerSpec): string {
    return sessionContainerName(this.config.platform.instance, spec.kind, spec.sessionId);
  }

  private nameOf(ref: ContainerRef): string {
    const recorded = ref.state.containerName;
    return typeof recorded === 'string' && recorded ? recorded : sessionContainerName(this.config.platform.instance, ref.kind, ref.sessionId);
  }

  /** Returns the existing container for this session, or null after removing a dead one so the caller can recreate it. */
  private async adopt(name: string, sessionId: string): Promise<Docker.Container | null> {
    const container = this.docker.getContainer(name);
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (error) {
      if (statusOf(error) === 404) return null; // removed between our create and inspect
      throw toPlatformError(error, `inspecting container ${name}`);
    }
    if (info.Config.Labels?.[LABELS.sessionId] !== sessionId) {
      throw new PlatformError(`container name ${name} is taken by a container Berth does not own`, false);
    }
    // Re-fetch by id: a handle obtained by name reports the name as its id.
    if (info.State.Running || info.State.Status === 'created') return this.docker.getContainer(info.Id);
    // A dead container from an earlier attempt: replace it with a fresh one.
    this.logger.log({ msg: 'replacing exited container from an earlier attempt', sessionId, container: name });
    await container.remove({ force: true }).catch((error) => {
      if (statusOf(error) !== 404 && statusOf(error) !== 409) throw toPlatformError(error, `removing container ${name}`);
    });
    return null;
  }

  private async exitReason(name: string, info: Docker.ContainerInspectInfo): Promise<string> {
    const parts = [`container exited with code ${info.State.ExitCode}`];
    if (info.State.OOMKilled) parts.push('killed: out of memory');
    if (info.State.Error) parts.push(info.State.Error);
    try {
      const buffer = (await this.docker.getContainer(name).logs({ stdout: true, stderr: true, tail: 5 })) as unknown as Buffer;
      const tail = demuxLogs(buffer).trim();
      if (tail) parts.push(`last output: ${tail}`);
    } catch {
      // Logs are a courtesy; the exit code is the fact.
    }
    return parts.join('; ').slice(0, 1000);
  }
}

/** Docker multiplexes stdout/stderr with 8-byte frame headers when there is no TTY. */
function demuxLogs(buffer: Buffer): string {
  const chunks: string[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(offset + 4);
    chunks.push(buffer.subarray(offset + 8, offset + 8 + size).toString('utf8'));
    offset += 8 + size;
  }
  return (chunks.length ? chunks.join('') : buffer.toString('utf8')).replace(/\s+/g, ' ');
}

function statusOf(error: unknown): number | undefined {
  return (error as DockerApiError)?.statusCode;
}

function messageOf(error: unknown): string {
  const err = error as DockerApiError;
  return err?.json?.message ?? err?.message ?? String(error);
}

function toPlatformError(error: unknown, action: string, image?: string): PlatformError {
  const status = statusOf(error);
  const message = messageOf(error);
  if (status === 404 && image && /image/i.test(message)) {
    return new PlatformError(`image ${image} is not available on the Docker engine`, false);
  }
  // 400 (bad config), 403, 404 and 409 will not fix themselves; 5xx and socket errors may.
  const transient = status === undefined || status >= 500;
  return new PlatformError(`Docker engine error while ${action}: ${message}`, transient);
}
