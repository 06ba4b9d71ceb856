import { Injectable } from '@nestjs/common';
import { KindProfiles } from '../kinds/kind-profiles';
import { CreatedSessionResponse, SessionResponse } from './dtos/session.response';
import { SessionStatus } from './session-status';
import { Session } from './session.entity';
import { SessionUrls } from './session-urls';
import { SessionsService } from './sessions.service';

/**
 * A session as the API shows it: the row, plus the public URLs built from
 * configuration (the generic ones here, the kind's own from its profile).
 * Internal facts (upstream address, host port, volume) never appear.
 */
@Injectable()
export class SessionPresenter {
  constructor(
    private readonly urls: SessionUrls,
    private readonly kinds: KindProfiles,
    private readonly sessions: SessionsService,
  ) {}

  async present(session: Session, accessToken?: string): Promise<SessionResponse> {
    const started = session.status === SessionStatus.Started;
    const queuePosition = await this.sessions.queuePosition(session);
    const kindUrls = this.kinds.get(session.kind).urls(session, started, accessToken);
    return {
      id: session.id,
      kind: session.kind,
      status: session.status,
      tunnel_url: started ? this.urls.pageUrl(session.id) : null,
      path_url: started ? this.urls.pathUrl(session.id) : null,
      cdp_url: kindUrls.cdp_url,
      live_view_url: kindUrls.live_view_url,
      options: session.options,
      owner: session.owner,
      workspace: session.workspace,
      profile: session.profile,
      queue_position: queuePosition,
      idle_timeout_seconds: session.idleTimeoutSeconds,
      last_activity_source: session.lastActivitySource,
      end_reason: session.endReason,
      removal_error: session.removalError,
      container_id: session.containerId,
      container_name: session.containerName,
      error_message: session.errorMessage,
      created_at: session.createdAt.toISOString(),
      updated_at: session.updatedAt.toISOString(),
      started_at: session.startedAt?.toISOString() ?? null,
      last_activity_at: session.lastActivityAt?.toISOString() ?? null,
      expires_at: session.expiresAt.toISOString(),
      deleted_at: session.deletedAt?.toISOString() ?? null,
    };
  }

  /** The response to a launch: the only one that carries the access token. */
  async created(session: Session, accessToken: string): Promise<CreatedSessionResponse> {
    return { ...(await this.present(session, accessToken)), access_token: accessToken };
  }
}
