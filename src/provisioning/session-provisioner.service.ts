import { Inject, Injectable, Logger } from '@nestjs/common';
import { BerthConfig } from '../config/berth-config';
import {
  CONTAINER_PLATFORM,
  ContainerPlatform,
  ContainerRef,
  PlatformError,
  SessionContainerSpec,
} from '../platform/container-platform';
import { SessionEvents } from '../sessions/session-events';
import { SessionStatus } from '../sessions/session-status';
import { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';
import { hashToken } from '../common/tokens';
import { KindProfiles } from '../kinds/kind-profiles';
import { upstreamSecret } from '../sessions/upstream-secret';
import { SessionJobs } from './session-jobs.service';

/** How often a provisioning job checks on a container that has not reported ready yet. */
const WATCH_INTERVAL_MS = 250;

export type ProvisionStep = 'claimed' | 'container-created' | 'waiting-for-ready' | 'started';

export type ProvisionOutcome = 'started' | 'failed' | 'ended-meanwhile' | 'not-live';


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
 * The worker's side of the lifecycle: start a session's container, watch it
 * until it reports ready, and tear containers down. Every step is safe to run
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
    private readonly events: SessionEvents,
    private readonly kinds: KindProfiles,
  ) {}

  /**
   * Provisions one session. Throws PlatformError for transient failures (the
   * job is retried); permanent failures end the session as `failed` here.
   */
  async provision(sessionId: string, callbackToken: string, progress: (step: ProvisionStep) => Promise<void> = async () => {}): Promise<ProvisionOutcome> {
    const session = await this.sessions.transition(sessionId, SessionStatus.Starting);
    if (!session) {
      this.logger.log({ msg: 'provisioning skipped: session no longer pending', sessionId });
      return 'not-live';
    }
    await progress('claimed');
    await this.jobs.scheduleExpiry(session.id, session.expiresAt);

    let started;
    try {
      const spec = await this.specFor(session, callbackToken);
      // Known before the container exists, so recorded before it can call back.
      const upstreamUrl = this.platform.upstreamUrlFor(spec);
      if (upstreamUrl) await this.sessions.recordUpstream(sessionId, upstreamUrl);
      started = await this.platform.start(spec);
    } catch (error) {
      if (error instanceof PlatformError && !error.transient) {
        await this.fail(session, error.message);
        return 'failed';
      }
      throw error;
    }
    this.logger.log({
      msg: started.adopted ? 'adopted existing container' : 'container started',
      sessionId,
      container: started.containerName,
    });

    const recorded = await this.sessions.recordContainer(sessionId, started.containerId, started.containerName, started.state);
    if (!recorded) {
      // Deleted or expired while the container was being created: we lost the
      // race, so we remove what we made (the teardown job may have run before it existed).
      this.logger.log({ msg: 'session ended during provisioning; removing its container', sessionId });
      await this.removeContainer({ sessionId, kind: session.kind, state: started.state });
      return 'ended-meanwhile';
    }
    await progress('container-created');
    return this.waitUntilReady({ ...session, platformState: started.state }, progress);
  }

  /**
   * Called as the worker begins to close: jobs watching a starting container
   * hand themselves back to the queue instead of holding shutdown up to the
   * start timeout.
   */
  stopWatching(): void {
    this.shuttingDown = true;
  }

  /** Removes a session's container. Idempotent. */
  async teardown(sessionId: string): Promise<void> {
    const session = await this.sessions.findById(sessionId);
    if (!session) return;
    await this.platform.stop(refOf(session));
    await this.sessions.releaseHostPort(sessionId);
    await this.jobs.cancelExpiry(sessionId);
    this.logger.log({ msg: 'container removed', sessionId, container: session.containerName });
  }

  /** Ends a session at its expiry time (the delayed job). */
  async expire(sessionId: string): Promise<void> {
    const expired = await this.sessions.transition(sessionId, SessionStatus.Expired, {}, 'expired');
    if (!expired) return;
    this.logger.log({ msg: 'session expired', sessionId });
    await this.removeContainer(refOf(expired));
  }

  /**
   * Holds the job until the container calls back (the callback sets `started`),
   * exits, or misses the start timeout. Failing fast on an exited container
   * gives users the real reason instead of a timeout minutes later.
   */
  private async waitUntilReady(session: Session, progress: (step: ProvisionStep) => Promise<void>): Promise<ProvisionOutcome> {
    await progress('waiting-for-ready');
    return this.watch(session, progress);
  }

  private async watch(session: Session, progress: (step: ProvisionStep) => Promise<void>): Promise<ProvisionOutcome> {
    const deadline = session.createdAt.getTime() + this.config.sessions.startTimeoutSeconds * 1000;
    for (let tick = 0; ; tick++) {
      if (this.shuttingDown) throw new ProvisioningInterrupted();
      const current = await this.sessions.findById(session.id);
      if (!current) return 'ended-meanwhile';
      if (current.status === SessionStatus.Started) {
        await progress('started');
        return 'started';
      }
      if (current.status !== SessionStatus.Starting) {
        // Stopped, expired or failed while starting: make sure nothing is left running.
        await this.removeContainer(refOf(session));
        return 'ended-meanwhile';
      }
      if (Date.now() >= deadline) {
        await this.fail(session, `did not start within ${this.config.sessions.startTimeoutSeconds} s`);
        return 'failed';
      }
      // The container is inspected less often than the row is read, except
      // while the platform has yet to say where the agent is (a pod's IP):
      // the ready callback is refused until the address is recorded.
      if (tick % 4 === 3 || !current.upstreamUrl) {
        const status = await this.platform.poll(refOf(session));
        if (status.state !== 'running') {
          const reason = status.state === 'exited' ? status.reason : 'container disappeared before it was ready';
          await this.fail(session, reason);
          return 'failed';
        }
        if (status.upstreamUrl && !current.upstreamUrl) await this.sessions.recordUpstream(session.id, status.upstreamUrl);
      }
      // Woken at once when the ready callback commits (the change feed), else re-checks on the interval.
      await this.events.next(session.id, WATCH_INTERVAL_MS);
    }
  }

  private async fail(session: Session, reason: string): Promise<void> {
    const failed = await this.sessions.transition(session.id, SessionStatus.Failed, { errorMessage: reason });
    if (failed) this.logger.warn({ msg: 'session failed', sessionId: session.id, error: reason });
    await this.removeContainer(refOf(session));
  }

  /**
   * Removes the container of a session whose status is already final. If the
   * platform refuses right now, a teardown job takes over with its own
   * retries: a retry of *this* job would find the session ended and stop early.
   */
  async removeContainer(ref: ContainerRef): Promise<void> {
    try {
      await this.platform.stop(ref);
      await this.sessions.releaseHostPort(ref.sessionId);
    } catch (error) {
      this.logger.warn({ msg: 'container removal deferred to a teardown job', sessionId: ref.sessionId, error: (error as Error).message });
      await this.jobs.teardown(ref.sessionId);
    }
  }

  /**
   * What the platform runs: what the session's kind asks for (limits, stop
   * grace, volumes, its agent's options), the agent's common environment
   * (docs/SESSION-CONTAINERS.md) and, on a shared host network, its port.
   */
  private async specFor(session: Session, callbackToken: string): Promise<SessionContainerSpec> {
    const kind = this.kinds.get(session.kind);
    const hostPort = this.platform.requiresHostPort
      ? await this.sessions.assignHostPort(session.id, this.config.platform.docker.portRange)
      : undefined;
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
        BERTH_CALLBACK_TOKEN: callbackToken,
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
