import { Inject, Injectable, Logger } from '@nestjs/common';
import { hashToken } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { KindProfiles } from '../kinds/kind-profiles';
import { CONTAINER_PLATFORM, ContainerPlatform, ContainerRef, PlatformError, SessionContainerSpec, StartedContainer } from '../platform/container-platform';
import { SessionSignals } from '../sessions/session-signals';
import { EndReason, SessionStatus } from '../sessions/session-status';
import { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';
import { PoolBinder } from '../pool/pool-binder';
import { PoolKeeper } from '../pool/pool-keeper';
import { SessionAgentClient } from '../sessions/session-agent.client';
import { callbackSecret, poolSecret, upstreamSecret } from '../sessions/session-secrets';
import { idleDeadline, nextDeadline } from '../sessions/session-deadlines';
import { SessionJobs } from './session-jobs.service';

/** How often a provisioning job checks on a container that has not reported ready yet (woken sooner by the change feed). */
const WATCH_INTERVAL_MS = 250;

export type ProvisionStep = 'claimed' | 'container-created' | 'waiting-for-ready' | 'started';

export type ProvisionOutcome = 'started' | 'failed' | 'ended-meanwhile' | 'not-live' | 'queued';

export type WarmOutcome = 'warm' | 'failed' | 'ended-meanwhile';

/** A warming container's readiness is polled (an unbound agent has no one to call back): first soon, then less often. */
const WARM_POLL_FIRST_MS = 20;
const WARM_POLL_MAX_MS = 500;

/** What a timer job found: done, or due again later (the deadline moved). */
export type TimerOutcome = { redelayTo: Date } | 'done';

/**
 * Thrown out of a provisioning job when the worker is shutting down while a
 * container is still starting. The processor puts the job back without using
 * up an attempt; the next worker to take it adopts the running container.
 */
export class ProvisioningInterrupted extends Error {
  constructor() {
    super('worker shutting down; provisioning will resume on another worker');
  }
}

export function refOf(session: Pick<Session, 'id' | 'kind' | 'platformState'>): ContainerRef {
  return { sessionId: session.id, kind: session.kind, state: session.platformState ?? {} };
}

/**
 * The worker's side of the lifecycle: admit a session under the capacity,
 * start its container, watch it until it reports ready, run its timers (TTL,
 * idle, expiring-soon) and remove containers. Every step is safe to run
 * twice, because BullMQ delivers at least once and two workers may race.
 */
@Injectable()
export class SessionProvisioner {
  private readonly logger = new Logger(SessionProvisioner.name);
  private shuttingDown = false;

  constructor(
    private readonly sessions: SessionsRepository,
    private readonly jobs: SessionJobs,
    @Inject(CONTAINER_PLATFORM) private readonly platform: ContainerPlatform,
    private readonly config: BerthConfig,
    private readonly signals: SessionSignals,
    private readonly kinds: KindProfiles,
    private readonly pool: PoolBinder,
    private readonly agent: SessionAgentClient,
    private readonly poolKeeper: PoolKeeper,
  ) {}

  /**
   * Provisions one session. Throws PlatformError for transient failures (the
   * job is retried); permanent failures end the session as `failed` here.
   * 'queued': no capacity yet; the processor puts the job back until a slot frees.
   */
  async provision(sessionId: string, progress: (step: ProvisionStep) => Promise<void> = async () => {}): Promise<ProvisionOutcome> {
    const admitted = await this.sessions.admit(sessionId, this.config.sessions.maxRunning);
    if (admitted === 'queued') {
      const current = await this.sessions.findById(sessionId);
      if (current) await this.sessions.recordEvent(sessionId, 'queued', 'worker', { position: await this.sessions.queuePosition(current) });
      // Pool containers hold slots nobody asked for: the keeper gives them up to launches that wait.
      this.poolKeeper.check();
      return 'queued';
    }
    if (!admitted) {
      this.logger.log({ msg: 'provisioning skipped: session no longer pending', sessionId });
      return 'not-live';
    }
    let session = admitted;
    // Independent of each other: one wait instead of three on the way to the
    // container (it counts in a burst, where every round trip queues).
    await Promise.all([progress('claimed'), this.jobs.scheduleExpiry(session.id, session.expiresAt)]);
    if (session.poolVariant && session.containerName) {
      // A launch claimed a warm container but did not finish binding it
      // (its API process died, or the bind failed): bind it now, or give
      // the session a container of its own.
      const fromPool = await this.finishClaim(session);
      if (fromPool !== 'cold') {
        if (fromPool === 'started') await progress('started');
        return fromPool;
      }
      const cold = await this.sessions.findById(sessionId);
      if (!cold || cold.status !== SessionStatus.Starting) return 'ended-meanwhile';
      session = cold;
    }

    // Recorded while the container is made; only while still starting, so a row that lost the
    // race to a quick ready callback never shows this phase after `started`.
    const [, started] = await Promise.all([
      this.sessions.recordEvent(sessionId, 'provisioning', 'worker', { phase: 'creating-container' }, SessionStatus.Starting),
      this.createContainer(session),
    ]);
    if (started === 'failed' || started === 'ended-meanwhile') return started;
    await progress('container-created');
    await progress('waiting-for-ready');
    // Only while still starting: a container that already called back makes this phase moot, and
    // recording it after `started` would show the phases out of order.
    await this.sessions.recordEvent(sessionId, 'provisioning', 'worker', { phase: 'waiting-for-callback' }, SessionStatus.Starting);
    return this.watch({ ...session, platformState: started.state }, progress);
  }

  /** Binds a claimed pool container, or removes it so the session starts cold ('cold'). */
  private async finishClaim(session: Session): Promise<'started' | 'ended-meanwhile' | 'cold'> {
    const outcome = await this.pool.bind(session, 'worker');
    if ('bound' in outcome) return 'started';
    if ('ended' in outcome) return 'ended-meanwhile';
    this.logger.warn({ msg: 'claimed pool container cannot be bound; starting the session cold', sessionId: session.id, error: outcome.unusable });
    await this.platform.stop(refOf(session));
    return (await this.sessions.forgetPoolContainer(session.id, outcome.unusable)) ? 'cold' : 'ended-meanwhile';
  }

  /**
   * Starts a warm pool container: unbound (no session, no callback), opened
   * only by the pool secret, then waits until its agent reports ready and
   * marks it `warm`, claimable. Idempotent like provisioning: a re-delivered
   * job adopts the container the first attempt created.
   */
  async warm(id: string): Promise<WarmOutcome> {
    const row = await this.sessions.findById(id);
    if (!row || row.status !== SessionStatus.Warming) return 'ended-meanwhile';
    const started = await this.createContainer(row);
    if (started === 'failed' || started === 'ended-meanwhile') return started;
    return this.awaitWarm({ ...row, platformState: started.state });
  }

  /**
   * Creates (or adopts) the row's container and records where it is. A
   * permanent platform error fails the row ('failed'); a transient one is
   * thrown for the job to retry. Ended meanwhile: the container is removed.
   */
  private async createContainer(session: Session): Promise<StartedContainer | 'failed' | 'ended-meanwhile'> {
    let started: StartedContainer;
    let recorded: boolean | undefined;
    try {
      const spec = await this.specFor(session);
      // Known before the container exists, so recorded before it can call back.
      const upstreamUrl = this.platform.upstreamUrlFor(spec);
      if (upstreamUrl) await this.sessions.recordUpstream(session.id, upstreamUrl);
      // Where the container is, recorded before it runs: a session is never `started` without it.
      started = await this.platform.start(spec, async (created) => {
        recorded = await this.sessions.recordContainer(session.id, created.containerId, created.containerName, created.state);
      });
    } catch (error) {
      if (error instanceof PlatformError && !error.transient) {
        await this.fail(session, error.message);
        return 'failed';
      }
      throw error;
    }
    this.logger.log({ msg: started.adopted ? 'adopted existing container' : 'container started', sessionId: session.id, container: started.containerName });
    recorded ??= await this.sessions.recordContainer(session.id, started.containerId, started.containerName, started.state);
    if (!recorded) {
      // Ended while the container was being created: we lost the race, so we
      // remove what we made (the teardown job may have run before it existed).
      this.logger.log({ msg: 'ended while its container was created; removing it', sessionId: session.id });
      await this.removeContainer({ ...session, platformState: started.state });
      return 'ended-meanwhile';
    }
    return started;
  }

  private async awaitWarm(row: Session): Promise<WarmOutcome> {
    const deadline = row.createdAt.getTime() + this.config.sessions.startTimeoutSeconds * 1000;
    let delay = WARM_POLL_FIRST_MS;
    for (let tick = 0; ; tick++) {
      if (this.shuttingDown) throw new ProvisioningInterrupted();
      const current = await this.sessions.findById(row.id);
      if (!current || current.status !== SessionStatus.Warming) {
        if (current && current.status !== SessionStatus.Warm) await this.removeContainer(current);
        return 'ended-meanwhile';
      }
      if (Date.now() >= deadline) {
        await this.fail(current, `pool container not ready within ${this.config.sessions.startTimeoutSeconds} s`);
        return 'failed';
      }
      if (tick % 8 === 7 || !current.upstreamUrl) {
        const status = await this.platform.poll(refOf(current));
        if (status.state !== 'running') {
          await this.fail(current, status.state === 'exited' ? status.reason : 'pool container disappeared before it was ready');
          return 'failed';
        }
        if (status.upstreamUrl && !current.upstreamUrl) await this.sessions.recordUpstream(row.id, status.upstreamUrl);
      }
      if (current.upstreamUrl && (await this.agentReady(current.upstreamUrl, row.id))) {
        const warm = await this.sessions.transition(row.id, SessionStatus.Warm, { actor: 'worker' });
        if (warm) this.logger.log({ msg: 'pool container warm', sessionId: row.id, pool: row.poolVariant, ms: Date.now() - row.createdAt.getTime() });
        return warm ? 'warm' : 'ended-meanwhile';
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 1.5, WARM_POLL_MAX_MS);
    }
  }

  /** The unbound agent's own answer: ready once its start-up is done (a browser: CDP answers). */
  private async agentReady(upstreamUrl: string, id: string): Promise<boolean> {
    try {
      const response = await this.agent.send(upstreamUrl, poolSecret(this.config, id), { method: 'GET', path: '/.berth/health', timeoutMs: 2000 });
      const health = (await response.body.json().catch(() => ({}))) as { ready?: boolean };
      return response.statusCode === 200 && health.ready === true;
    } catch {
      return false; // not listening yet
    }
  }

  /**
   * Called as the worker begins to close: jobs watching a starting container
   * hand themselves back to the queue instead of holding shutdown up to the
   * start timeout.
   */
  stopWatching(): void {
    this.shuttingDown = true;
  }

  /**
   * Removes an ended session's container and, once it is gone, completes a
   * `stopping` session (stopped or expired), frees its port and wakes a
   * session waiting for capacity. Idempotent. A removal the platform refuses
   * is recorded on the session (visible) and thrown, so the job retries.
   */
  async teardown(sessionId: string): Promise<void> {
    const session = await this.sessions.findById(sessionId);
    if (!session) return;
    try {
      await this.platform.stop(refOf(session));
    } catch (error) {
      await this.sessions.recordRemovalError(sessionId, (error as Error).message);
      throw error;
    }
    await this.containerGone(session);
    this.logger.log({ msg: 'container removed', sessionId, container: session.containerName });
  }

  /** The container is gone: settle the row, free the port, drop timers, let the next queued session in. */
  private async containerGone(session: Session): Promise<void> {
    const stopped = await this.sessions.completeStop(session.id);
    if (stopped) this.signals.changed(session.id);
    await this.sessions.releaseHostPort(session.id);
    await this.jobs.cancelTimers(session.id);
    await this.wakeQueued();
  }

  /** Capacity freed: promote the provisioning jobs of the oldest pending sessions. */
  async wakeQueued(): Promise<void> {
    if (this.config.sessions.maxRunning === 0) return;
    await this.jobs.wakeQueued(await this.sessions.oldestPending(this.platform.name, 8));
  }

  /** The TTL job: ends the session if its deadline passed, or re-delays to the new one (it was extended). */
  async expire(sessionId: string): Promise<TimerOutcome> {
    const session = await this.sessions.findById(sessionId);
    if (!session || !isLiveStatus(session.status)) return 'done';
    if (session.expiresAt.getTime() > Date.now()) return { redelayTo: session.expiresAt };
    const stopping = await this.sessions.transition(sessionId, SessionStatus.Stopping, { stopStatus: SessionStatus.Expired, endReason: EndReason.Ttl }, 'expired');
    if (!stopping) return 'done';
    this.logger.log({ msg: 'session expired', sessionId });
    this.signals.changed(sessionId);
    await this.removeAfterTimer(sessionId);
    return 'done';
  }

  /** The idle job: stops the session once idle past its timeout, else re-delays to its current idle deadline. */
  async checkIdle(sessionId: string): Promise<TimerOutcome> {
    const session = await this.sessions.findById(sessionId);
    const deadline = session ? idleDeadline(session) : null;
    if (!session || session.status !== SessionStatus.Started || !deadline) return 'done';
    if (deadline.getTime() > Date.now()) return { redelayTo: deadline };
    const stopping = await this.sessions.transition(sessionId, SessionStatus.Stopping, { stopStatus: SessionStatus.Stopped, endReason: EndReason.Idle }, 'idle');
    if (!stopping) return { redelayTo: new Date(Date.now() + 1000) }; // activity landed meanwhile: check again
    this.logger.log({ msg: 'session idle past its timeout: stopped', sessionId, idleTimeoutSeconds: session.idleTimeoutSeconds });
    this.signals.changed(sessionId);
    await this.removeAfterTimer(sessionId);
    return 'done';
  }

  /**
   * A timer ended the session: its container goes now or, when the platform
   * refuses right now (an engine restarting), through a teardown job with its
   * own retries. Thrown instead, the timer job's retry would find the session
   * already `stopping` and do nothing, leaving the container (and its port)
   * to the sweep: found by the chaos run, ~25 s at a 1-minute sweep interval.
   */
  private async removeAfterTimer(sessionId: string): Promise<void> {
    try {
      await this.teardown(sessionId);
    } catch (error) {
      this.logger.warn({ msg: 'container removal deferred to a teardown job', sessionId, error: (error as Error).message });
      await this.jobs.teardown(sessionId);
    }
  }

  /**
   * The expiring-soon job: once within EXPIRING_SOON_SECONDS of the next
   * deadline (TTL or idle), records `expiring_soon` (once per deadline), then
   * waits for the deadline after it; activity that moves the idle deadline
   * just moves the warning.
   */
  async warnDeadline(sessionId: string): Promise<TimerOutcome> {
    const session = await this.sessions.findById(sessionId);
    if (!session || !isLiveStatus(session.status)) return 'done';
    const next = nextDeadline(session);
    const warnAt = next.at.getTime() - this.config.sessions.expiringSoonSeconds * 1000;
    if (Date.now() < warnAt) return { redelayTo: new Date(warnAt) };
    await this.sessions.recordEventOnce(sessionId, 'expiring_soon', { deadline: next.at.toISOString(), which: next.which });
    // After this deadline the session has ended, or the deadline moved: look again then.
    return { redelayTo: new Date(Math.max(next.at.getTime(), Date.now()) + 1000) };
  }

  /**
   * Holds the job until the container calls back (the callback sets `started`),
   * exits, or misses the start timeout. Failing fast on an exited container
   * gives users the real reason instead of a timeout minutes later.
   */
  private async watch(session: Session, progress: (step: ProvisionStep) => Promise<void>): Promise<ProvisionOutcome> {
    const deadline = (session.admittedAt ?? session.createdAt).getTime() + this.config.sessions.startTimeoutSeconds * 1000;
    for (let tick = 0; ; tick++) {
      if (this.shuttingDown) throw new ProvisioningInterrupted();
      const current = await this.sessions.findById(session.id);
      if (!current) return 'ended-meanwhile';
      if (current.status === SessionStatus.Started) {
        await this.jobs.scheduleStartedTimers(current);
        await progress('started');
        return 'started';
      }
      if (current.status !== SessionStatus.Starting) {
        // Ended while starting: make sure nothing is left running.
        await this.removeContainer(current);
        return 'ended-meanwhile';
      }
      if (Date.now() >= deadline) {
        await this.fail(current, `did not start within ${this.config.sessions.startTimeoutSeconds} s`);
        return 'failed';
      }
      // The container is inspected less often than the row is read, except
      // while the platform has yet to say where the agent is (a pod's IP):
      // the ready callback is refused until the address is recorded.
      if (tick % 4 === 3 || !current.upstreamUrl) {
        const status = await this.platform.poll(refOf(session));
        if (status.state !== 'running') {
          const reason = status.state === 'exited' ? status.reason : 'container disappeared before it was ready';
          await this.fail(current, reason);
          return 'failed';
        }
        if (status.upstreamUrl && !current.upstreamUrl) await this.sessions.recordUpstream(session.id, status.upstreamUrl);
      }
      // Woken at once when the ready callback commits (the change feed), else re-checks on the interval.
      await this.signals.next(session.id, WATCH_INTERVAL_MS);
    }
  }

  private async fail(session: Session, reason: string): Promise<void> {
    const failed = await this.sessions.transition(session.id, SessionStatus.Failed, { errorMessage: reason, actor: 'worker' });
    if (failed) {
      this.logger.warn({ msg: 'session failed', sessionId: session.id, error: reason });
      this.signals.changed(session.id);
    }
    await this.removeContainer(session);
  }

  /**
   * Removes the container of a session that has ended. If the platform
   * refuses right now, a teardown job takes over with its own retries: a
   * retry of *this* job would find the session ended and stop early.
   */
  async removeContainer(session: Session): Promise<void> {
    try {
      await this.platform.stop(refOf(session));
    } catch (error) {
      this.logger.warn({ msg: 'container removal deferred to a teardown job', sessionId: session.id, error: (error as Error).message });
      await this.jobs.teardown(session.id);
      return;
    }
    await this.containerGone(session);
  }

  /**
   * What the platform runs: what the session's kind asks for (limits, stop
   * grace, volumes, its agent's options), the agent's common environment
   * (docs/SESSION-CONTAINERS.md) and, on a shared host network, its port.
   */
  private async specFor(session: Session): Promise<SessionContainerSpec> {
    const kind = this.kinds.get(session.kind);
    const hostPort = this.platform.requiresHostPort ? await this.sessions.assignHostPort(session.id, this.config.platform.docker.portRange) : undefined;
    if (session.status === SessionStatus.Warming) {
      // Unbound: no session, no callback; only the pool secret opens it until a launch binds it.
      const variant = kind.poolVariants.find((candidate) => candidate.name === session.poolVariant);
      if (!variant) throw new PlatformError(`unknown pool variant ${session.poolVariant} for ${session.kind}`, false);
      return {
        sessionId: session.id,
        kind: session.kind,
        image: session.image,
        hostPort,
        resources: kind.settings.resources,
        stopGraceSeconds: kind.stopGraceSeconds,
        volumes: [],
        env: { ...kind.poolAgentEnv(variant), BERTH_SECRET_SHA256: hashToken(poolSecret(this.config, session.id)) },
      };
    }
    return {
      sessionId: session.id,
      kind: session.kind,
      image: session.image,
      hostPort,
      resources: kind.settings.resources,
      stopGraceSeconds: kind.stopGraceSeconds,
      volumes: kind.volumes(session),
      env: {
        ...kind.agentEnv(session),
        BERTH_SESSION_ID: session.id,
        BERTH_CALLBACK_URL: this.config.callbackUrl,
        BERTH_CALLBACK_TOKEN: callbackSecret(this.config, session.id),
        // The agent only checks the gateway's secret against this hash; users'
        // tokens never reach the container.
        BERTH_SECRET_SHA256: hashToken(upstreamSecret(this.config, session.id)),
      },
    };
  }

  /** Marks a session failed when its provisioning job gives up (permanent error, or retries exhausted). */
  async failProvisioning(sessionId: string, reason: string): Promise<void> {
    const session = await this.sessions.findById(sessionId);
    if (session) await this.fail(session, reason);
  }
}

function isLiveStatus(status: SessionStatus): boolean {
  return status === SessionStatus.Pending || status === SessionStatus.Starting || status === SessionStatus.Started;
}
