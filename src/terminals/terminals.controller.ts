import { Body, Controller, Headers, HttpCode, Post, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiTags, ApiTooManyRequestsResponse } from '@nestjs/swagger';
import type { Response } from 'express';
import { launchRequest } from '../sessions/dtos/launch.dto';
import { CreatedSessionResponse, ErrorResponse } from '../sessions/dtos/session.response';
import { SessionEndpointsFor } from '../sessions/session-endpoints';
import { SessionKind, SessionStatus } from '../sessions/session-status';
import { CurrentPrincipal, Principal } from '../tenancy/principal';
import { CreateTerminalDto } from './create-terminal.dto';

/** The seed's Terminal Server API. Reading and ending are the shared session routes; launching is the terminal's own. */
@ApiTags('terminals')
@Controller('api/v1/terminals')
export class TerminalsController extends SessionEndpointsFor(SessionKind.Terminal, 'terminal') {
  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Create a terminal',
    description:
      'Records the session as `pending` and queues its provisioning (202). When the warm pool has a terminal ready ' +
      '(no workspace), the session is that container, already `started` (201). With `reuse` or an Idempotency-Key that ' +
      'points at an existing session, or a workspace a live session holds, answers 200 with that session (and a new ' +
      'access token). GET it with `wait_seconds` (or follow its events) to learn when it is `started`.',
  })
  @ApiHeader({ name: 'Idempotency-Key', required: false, description: 'A replay with the same key returns the same session.' })
  @ApiAcceptedResponse({ type: CreatedSessionResponse, description: 'A new session, being started.' })
  @ApiCreatedResponse({ type: CreatedSessionResponse, description: 'A new session, started from the warm pool.' })
  @ApiOkResponse({ type: CreatedSessionResponse, description: 'An existing session, handed out again.' })
  @ApiTooManyRequestsResponse({ type: ErrorResponse, description: 'A quota or the rate limit is reached (see Retry-After).' })
  async create(
    @CurrentPrincipal() principal: Principal,
    @Body() body: CreateTerminalDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<CreatedSessionResponse> {
    const { session, accessToken, reused } = await this.sessions.create(principal, SessionKind.Terminal, {
      ...launchRequest(body, idempotencyKey),
      storage: body.workspace,
    });
    if (reused) res.status(200);
    else if (session.status === SessionStatus.Started) res.status(201);
    return this.presenter.created(session, accessToken);
  }
}
