import { Injectable, Logger } from '@nestjs/common';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { hashToken, tokenMatches } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { callbackSecret } from '../sessions/session-secrets';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { SessionSignals } from '../sessions/session-signals';
import { SessionStatus } from '../sessions/session-status';
import { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';

/**
 * What session containers tell Berth about themselves. Each call must carry
 * the session's callback secret; a wrong or missing one changes nothing.
 */
@Injectable()
export class CallbacksService {
  private readonly logger = new Logger(CallbacksService.name);

  constructor(
    private readonly sessions: SessionsRepository,
    private readonly jobs: SessionJobs,
    private readonly events: SessionSignals,
    private readonly config: BerthConfig,
  ) {}

  /** The agent serves requests: `starting` becomes `started`. */
  async reportReady(sessionId: string, token: string | undefined): Promise<Session> {
    await this.authenticate(sessionId, token);
    const started = await this.sessions.transition(sessionId, SessionStatus.Started, { startedAt: 'now', actor: 'container' });
    if (started) {
      this.events.changed(sessionId);
      this.logger.log({ msg: 'session started', sessionId });
      return started;
    }
    const current = await this.sessions.findById(sessionId);
    // A repeated callback (the container retried after a lost response) is fine.
    if (current?.status === SessionStatus.Started) return current;
    if (current?.status === SessionStatus.Starting && !current.upstreamUrl) {
      // The platform has not said where the container is yet (a pod's IP):
      // the agent retries, the worker records the address meanwhile.
      throw new DomainException(ErrorCode.NotReady, `Session ${sessionId} is not routable yet; retry`);
    }
    throw new DomainException(ErrorCode.SessionNotLive, `Session ${sessionId} is ${current?.status ?? 'gone'}; the container should exit`);
  }

  /** The container could not start: the session fails and its container is removed. */
  async reportFailure(sessionId: string, token: string | undefined, errorMessage: string): Promise<Session> {
    await this.authenticate(sessionId, token);
    const failed = await this.sessions.transition(sessionId, SessionStatus.Failed, { errorMessage, actor: 'container' });
    if (!failed) {
      const current = await this.sessions.findById(sessionId);
      throw new DomainException(ErrorCode.SessionNotLive, `Session ${sessionId} is already ${current?.status ?? 'gone'}`);
    }
    this.events.changed(sessionId);
    this.logger.warn({ msg: 'session failed (reported by container)', sessionId, error: errorMessage });
    await this.jobs.teardown(sessionId).catch((error: Error) =>
      this.logger.warn({ msg: 'teardown not queued; cleanup will reap the container', sessionId, error: error.message }),
    );
    return failed;
  }

  /** The session's derived callback secret, compared in constant time; unknown sessions and wrong secrets look alike. */
  private async authenticate(sessionId: string, token: string | undefined): Promise<void> {
    if (!token || !tokenMatches(token, hashToken(callbackSecret(this.config, sessionId)))) {
      this.logger.warn({ msg: 'callback refused: bad credentials', sessionId });
      throw new DomainException(ErrorCode.CallbackUnauthorized, 'Missing or invalid callback credentials');
    }
  }
}
