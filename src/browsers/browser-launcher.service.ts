import { Injectable } from '@nestjs/common';
import { BrowserOptions, DEFAULT_VIEWPORT } from '../kinds/browser.kind';
import { SessionKind } from '../sessions/session-status';
import { CreatedSession, SessionsService } from '../sessions/sessions.service';
import { BrowserProfilesRepository } from './browser-profiles.repository';
import { CreateBrowserDto } from './create-browser.dto';
import { StartUrlPolicy } from './start-url-policy';

/** Turns a launch request into a browser session on the shared lifecycle: checks, options, profile. */
@Injectable()
export class BrowserLauncher {
  constructor(
    private readonly sessions: SessionsService,
    private readonly startUrls: StartUrlPolicy,
    private readonly profiles: BrowserProfilesRepository,
  ) {}

  async launch(request: CreateBrowserDto): Promise<CreatedSession> {
    if (request.start_url) await this.startUrls.check(request.start_url);
    const options: BrowserOptions = {
      headless: request.headless ?? false,
      viewport: request.viewport ? { width: request.viewport.width, height: request.viewport.height } : DEFAULT_VIEWPORT,
      view_only: request.view_only ?? false,
      ...(request.start_url ? { start_url: request.start_url } : {}),
      ...(request.profile ? { profile: request.profile } : {}),
    };
    const profile = request.profile ? { name: request.profile, volume: await this.profiles.use(request.profile) } : undefined;
    return this.sessions.create(SessionKind.Browser, { ttlSeconds: request.ttl_seconds, options: { ...options }, profile });
  }
}
