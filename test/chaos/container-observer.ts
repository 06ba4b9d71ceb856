import Docker from 'dockerode';
import { LABELS } from '../../src/platform/container-platform';
import { sleep } from './util';

export interface ObservedContainer {
  id: string;
  sessionId: string;
  name: string;
  /** When the engine said it was created (event), or when a listing first showed it. */
  createdAt: number;
  diedAt?: number;
  destroyedAt?: number;
}

export interface Duplicate {
  sessionId: string;
  at: number;
  containerIds: string[];
  seenBy: 'events' | 'listing';
}

/**
 * Watches every container of one BERTH_INSTANCE on the private engine, two
 * ways: the engine's event stream (every create and destroy, however short
 * lived the container) and a listing every `sampleMs`. A session with two
 * containers at the same moment is a duplicate; one that got a second
 * container after its first was gone is a re-creation (reported apart).
 * The event stream is re-opened (and the state re-read from a listing)
 * whenever the engine restarts.
 */
export class ContainerObserver {
  readonly containers = new Map<string, ObservedContainer>();
  readonly duplicates: Duplicate[] = [];
  private readonly live = new Map<string, Set<string>>();
  private stopped = false;
  private stream?: NodeJS.ReadableStream;
  private loops: Promise<void>[] = [];
  samples = 0;
  reconnects = 0;

  constructor(
    private readonly docker: Docker,
    private readonly instance: string,
    private readonly sampleMs = 250,
  ) {}

  start(): void {
    this.loops = [this.eventsLoop(), this.sampleLoop()];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    (this.stream as unknown as { destroy?: () => void })?.destroy?.();
    await Promise.all(this.loops);
  }

  /** Containers of each session, in creation order. */
  bySession(): Map<string, ObservedContainer[]> {
    const out = new Map<string, ObservedContainer[]>();
    for (const container of this.containers.values()) {
      const list = out.get(container.sessionId) ?? [];
      list.push(container);
      out.set(container.sessionId, list);
    }
    for (const list of out.values()) list.sort((a, b) => a.createdAt - b.createdAt);
    return out;
  }

  private filters(): Record<string, string[]> {
    return { label: [`${LABELS.instance}=${this.instance}`] };
  }

  private async eventsLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        const stream = (await this.docker.getEvents({ filters: { ...this.filters(), type: ['container'] } } as never)) as unknown as NodeJS.ReadableStream;
        this.stream = stream;
        // Anything created or removed while the stream was down is in the listing.
        await this.resync();
        let buffer = '';
        await new Promise<void>((resolve) => {
          stream.on('data', (chunk: Buffer) => {
            buffer += chunk.toString('utf8');
            let newline: number;
            while ((newline = buffer.indexOf('\n')) >= 0) {
              const line = buffer.slice(0, newline).trim();
              buffer = buffer.slice(newline + 1);
              if (line) this.onEvent(JSON.parse(line));
            }
          });
          stream.on('end', resolve);
          stream.on('close', resolve);
          stream.on('error', () => resolve());
        });
      } catch {
        // engine down: try again shortly
      }
      if (!this.stopped) {
        this.reconnects++;
        await sleep(100);
      }
    }
  }

  private onEvent(event: { Action?: string; status?: string; id: string; timeNano?: number; time?: number; Actor?: { Attributes?: Record<string, string> } }): void {
    const action = event.Action ?? event.status;
    const attributes = event.Actor?.Attributes ?? {};
    const sessionId = attributes[LABELS.sessionId];
    if (!sessionId) return;
    const at = event.timeNano ? Math.floor(event.timeNano / 1e6) : (event.time ?? 0) * 1000;
    if (action === 'create') {
      this.record(event.id, sessionId, attributes.name ?? '', at, 'events');
    } else if (action === 'die') {
      const known = this.containers.get(event.id);
      if (known && !known.diedAt) known.diedAt = at;
    } else if (action === 'destroy') {
      const known = this.containers.get(event.id) ?? this.record(event.id, sessionId, attributes.name ?? '', at, 'events');
      known.destroyedAt = at;
      this.live.get(sessionId)?.delete(event.id);
    }
  }

  private record(id: string, sessionId: string, name: string, createdAt: number, seenBy: Duplicate['seenBy']): ObservedContainer {
    let known = this.containers.get(id);
    if (!known) {
      known = { id, sessionId, name, createdAt };
      this.containers.set(id, known);
      const live = this.live.get(sessionId) ?? new Set<string>();
      // Only the event stream is ordered: a listing can show a new container
      // before the stream has delivered its predecessor's destroy.
      if (seenBy === 'events' && live.size > 0) this.duplicates.push({ sessionId, at: createdAt, containerIds: [...live, id], seenBy });
      live.add(id);
      this.live.set(sessionId, live);
    }
    return known;
  }

  private async list(): Promise<Docker.ContainerInfo[]> {
    return this.docker.listContainers({ all: true, filters: this.filters() });
  }

  private async resync(): Promise<void> {
    const listed = await this.list();
    const now = Date.now();
    const present = new Set(listed.map((container) => container.Id));
    for (const [sessionId, live] of this.live) {
      for (const id of live) {
        if (present.has(id)) continue;
        live.delete(id);
        const known = this.containers.get(id);
        if (known && !known.destroyedAt) known.destroyedAt = now;
      }
      if (!live.size) this.live.delete(sessionId);
    }
    this.inspectListing(listed);
  }

  private inspectListing(listed: Docker.ContainerInfo[]): void {
    const perSession = new Map<string, string[]>();
    for (const container of listed) {
      const sessionId = container.Labels[LABELS.sessionId];
      if (!sessionId) continue;
      perSession.set(sessionId, [...(perSession.get(sessionId) ?? []), container.Id]);
      if (!this.containers.has(container.Id)) {
        this.record(container.Id, sessionId, (container.Names[0] ?? '').replace(/^\//, ''), container.Created * 1000, 'listing');
      }
    }
    for (const [sessionId, ids] of perSession) {
      if (ids.length > 1 && !this.duplicates.some((duplicate) => duplicate.sessionId === sessionId)) {
        this.duplicates.push({ sessionId, at: Date.now(), containerIds: ids, seenBy: 'listing' });
      }
    }
  }

  private async sampleLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        this.inspectListing(await this.list());
        this.samples++;
      } catch {
        // engine down
      }
      await sleep(this.sampleMs);
    }
  }

  /** Containers of the instance that exist right now. */
  async current(): Promise<Docker.ContainerInfo[]> {
    return this.list();
  }
}
