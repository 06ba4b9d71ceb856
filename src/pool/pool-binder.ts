import { Injectable, Logger } from '@nestjs/common';
import { hashToken } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { SessionAgentClient } from '../sessions/session-agent.client';
import { callbackSecret, poolSecret, upstreamSecret } from '../sessions/session-secrets';
import { SessionSignals } from '../sessions/session-signals';
import { SessionStatus } from '../sessions/session-status';
import { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';

/**
 * Longest wait for a bind. A browser bind may navigate to the start URL
 * (the agent bounds that itself); a terminal's answers in a millisecond.
 */
const BIND_TIMEOUT_MS = 20_000;

/** How a bind ended: the session is started, it ended meanwhile, or the container cannot serve it (start it cold). */
export type BindOutcome = { bound: Session } | { ended: Session | null } | { unusable: string };

/**
 * Binds a claimed warm pool container to its session (docs/SESSION-CONTAINERS.md,
 * POST /.berth/bind): the session's id, the hash of its upstream secret, its
 * callback and its options. From then on the container refuses the pool
 * secret and opens only to the gateway carrying the session's secret.
 * Used by the API right after the claim, and by the worker when the API
 * could not finish (it crashed, or the bind failed).
 */
@Injectable()
export class PoolBinder {
  private readonly logger = new Logger(PoolBinder.name);

  constructor(
    private readonly sessions: SessionsRepository,
    private readonly agent: SessionAgentClient,
    private readonly jobs: SessionJobs,
    private readonly signals: SessionSignals,
    private readonly config: BerthConfig,
  ) {}

  async bind(session: Session, actor: string): Promise<BindOutcome> {
    if (!session.upstreamUrl) return { unusable: 'the pool container has no address' };
    const outcome = await this.sendBind(session);
    if (outcome !== 'bound') return { unusable: outcome };
    const started = await this.sessions.transition(session.id, SessionStatus.Started, {
      startedAt: 'now',
      actor,
      event: { pool: session.poolVariant },
    });
    if (!started) return { ended: await this.sessions.findById(session.id) };
    this.signals.changed(session.id);
    await this.jobs.scheduleStartedTimers(started);
    this.logger.log({ msg: 'session started from the warm pool', sessionId: session.id, pool: session.poolVariant });
    return { bound: started };
  }

  /** 'bound', or why the container cannot be used. Already bound to this session (a retried bind) counts as bound. */
  private async sendBind(session: Session): Promise<'bound' | string> {
    const body = JSON.stringify({
      session_id: session.id,
      secret_sha256: hashToken(upstreamSecret(this.config, session.id)),
      callback_url: this.config.callbackUrl,
      callback_token: callbackSecret(this.config, session.id),
      options: session.options,
    });
    try {
      const response = await this.agent.send(session.upstreamUrl!, poolSecret(this.config, session.id), {
        method: 'POST',
        path: '/.berth/bind',
        headers: { 'content-type': 'application/json' },
        body,
        timeoutMs: BIND_TIMEOUT_MS,
      });
      const text = await response.body.text();
      if (response.statusCode === 200) return 'bound';
      // 401: the pool secret no longer opens it; 409: bound already. Either way, bound to us?
      if ((response.statusCode === 401 || response.statusCode === 409) && (await this.boundTo(session))) return 'bound';
      return `bind answered ${response.statusCode}: ${text.slice(0, 200)}`;
    } catch (error) {
      return `bind failed: ${(error as Error).message}`;
    }
  }

  /** True when the container already answers to this session's secret as this session. */
  private async boundTo(session: Session): Promise<boolean> {
    try {
      const response = await this.agent.send(session.upstreamUrl!, upstreamSecret(this.config, session.id), {
        method: 'GET',
        path: '/.berth/health',
        timeoutMs: 3000,
      });
      const health = (await response.body.json().catch(() => ({}))) as { bound?: boolean; session_id?: string };
      return response.statusCode === 200 && health.bound === true && health.session_id === session.id;
    } catch {
      return false;
    }
  }
}
