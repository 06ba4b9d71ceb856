import { Inject, Injectable, Logger } from '@nestjs/common';
import { hashToken } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { KindProfiles } from '../kinds/kind-profiles';
import { CONTAINER_PLATFORM, ContainerPlatform, ContainerRef, PlatformError, SessionContainerSpec } from '../platform/container-platform';
import { SessionSignals } from '../sessions/session-signals';
import { EndReason, SessionStatus } from '../sessions/session-status';
import { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';
import { callbackSecret, upstreamSecret } from '../sessions/session-secrets';
import { SessionJobs } from './session-jobs.service';

/** How often a provisioning job checks on a container that has not reported ready yet (woken sooner by the change feed). */
const WATCH_INTERVAL_MS = 250;

export type ProvisionStep = 'claimed' | 'container-created' | 'waiting-for-ready' | 'started';

export type ProvisionOutcome = 'started' | 'failed' | 'ended-meanwhile' | 'not-live' | 'queued';

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
      return 'queued';
    }
    if (!admitted) {
      this.logger.log({ msg: 'provisioning skipped: session no longer pending', sessionId });
      return 'not-live';
    }
    const session = admitted;
    await progress('claimed');
    await this.jobs.scheduleExpiry(session.id, session.expiresAt);

    let started;
    try {
      const spec = await this.specFor(session);
      // Known before the container exists, so recorded before it can call back.
      const upstreamUrl = this.platform.upstreamUrlFor(spec);
      if (upstreamUrl) await this.sessions.recordUpstream(sessionId, upstreamUrl);
      await this.sessions.recordEvent(sessionId, 'provisioning', 'worker', { phase: 'creating-container' });
      started = await this.platform.start(spec);
    } catch (error) {
      if (error instanceof PlatformError && !error.transient) {
        await this.fail(session, error.message);
        return 'failed';
      }
      throw error;
    }
    this.logger.log({ msg: started.adopted ? 'adopted existing container' : 'container started', sessionId, container: started.containerName });

    const recorded = await this.sessions.recordContainer(sessionId, started.containerId, started.containerName, started.state);
    if (!recorded) {
      // Ended while the container was being created: we lost the race, so we
      // remove what we made (the teardown job may have run before it existed).
      this.logger.log({ msg: 'session ended during provisioning; removing its container', sessionId });
      await this.removeContainer({ ...session, platformState: started.state });
      return 'ended-meanwhile';
    }
    await progress('container-created');
    await progress('waiting-for-ready');
    await this.sessions.recordEvent(sessionId, 'provisioning', 'worker', { phase: 'waiting-for-callback' });
    return this.watch({ ...session, platformState: started.state }, progress);
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
    await this.teardown(sessionId);
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
    await this.teardown(sessionId);
    return 'done';
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

  /** A started session's timers: idle check and expiring-soon warning (the TTL job exists since admission). */
  async scheduleTimers(session: Session): Promise<void> {
    const idle = idleDeadline(session);
    if (idle) await this.jobs.scheduleIdleCheck(session.id, idle);
    const next = nextDeadline(session);
    await this.jobs.scheduleDeadlineWarning(session.id, new Date(next.at.getTime() - this.config.sessions.expiringSoonSeconds * 1000));
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
        await this.scheduleTimers(current);
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

/** When a started session becomes idle if nothing happens (null: it has no idle timeout). */
export function idleDeadline(session: Pick<Session, 'idleTimeoutSeconds' | 'lastActivityAt' | 'startedAt'>): Date | null {
  const since = session.lastActivityAt ?? session.startedAt;
  if (session.idleTimeoutSeconds === null || !since) return null;
  return new Date(since.getTime() + session.idleTimeoutSeconds * 1000);
}

/** The deadline that ends the session first if nothing changes: its TTL, or being idle. */
export function nextDeadline(session: Session): { at: Date; which: 'ttl' | 'idle' } {
  const idle = session.status === SessionStatus.Started ? idleDeadline(session) : null;
  return idle && idle < session.expiresAt ? { at: idle, which: 'idle' } : { at: session.expiresAt, which: 'ttl' };
}
