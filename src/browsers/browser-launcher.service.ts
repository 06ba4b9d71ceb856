import { Injectable } from '@nestjs/common';
import { BrowserOptions, DEFAULT_VIEWPORT } from '../kinds/browser.kind';
import { launchRequest } from '../sessions/dtos/launch.dto';
import { SessionKind } from '../sessions/session-status';
import { CreatedSession, SessionsService } from '../sessions/sessions.service';
import { Principal } from '../tenancy/principal';
import { CreateBrowserDto } from './create-browser.dto';
import { StartUrlPolicy } from './start-url-policy';

/** Turns a launch request into a browser session on the shared lifecycle: checks, options, profile. */
@Injectable()
export class BrowserLauncher {
  constructor(
    private readonly sessions: SessionsService,
    private readonly startUrls: StartUrlPolicy,
  ) {}

  async launch(principal: Principal, request: CreateBrowserDto, idempotencyKey?: string): Promise<CreatedSession> {
    const generic = launchRequest(request, idempotencyKey);
    if (request.start_url) await this.startUrls.check(request.start_url);
    const options: BrowserOptions = {
      headless: request.headless ?? false,
      viewport: request.viewport ? { width: request.viewport.width, height: request.viewport.height } : DEFAULT_VIEWPORT,
      view_only: request.view_only ?? false,
      ...(request.start_url ? { start_url: request.start_url } : {}),
      ...(request.profile ? { profile: request.profile } : {}),
    };
    return this.sessions.create(principal, SessionKind.Browser, { ...generic, options: { ...options }, storage: request.profile });
  }
}
