import { Body, Controller, Headers, HttpCode, Post } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiConflictResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { ErrorResponse } from '../sessions/dtos/session.response';
import { CallbackAcceptedResponse, StatusCallbackDto, TunnelCallbackDto } from './dtos/callback.dto';
import { CallbacksService } from './callbacks.service';
import { Public } from '../tenancy/public.decorator';

function bearer(authorization: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  return match?.[1];
}

/**
 * The callback API used by session containers (not by users).
 * Authentication: `Authorization: Bearer <callback secret>`, the per-session
 * secret the platform gave the container in BERTH_CALLBACK_TOKEN.
 */
@ApiTags('callbacks')
@Public()
@ApiBearerAuth('callback-token')
@ApiBadRequestResponse({ type: ErrorResponse })
@ApiUnauthorizedResponse({ type: ErrorResponse, description: 'Missing or wrong callback secret; nothing changed.' })
@ApiConflictResponse({ type: ErrorResponse, description: 'The session already ended; the container should exit.' })
@Controller('api/v1/callbacks')
export class CallbacksController {
  constructor(private readonly callbacks: CallbacksService) {}

  @Post('tunnel')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Report ready',
    description:
      'The agent serves requests: the session moves from `starting` to `started`. Idempotent. ' +
      '503 with Retry-After while the platform has not yet told Berth where the container is (retry).',
  })
  @ApiOkResponse({ type: CallbackAcceptedResponse })
  async tunnel(@Body() body: TunnelCallbackDto, @Headers('authorization') authorization?: string): Promise<CallbackAcceptedResponse> {
    const session = await this.callbacks.reportReady(body.sessionId, bearer(authorization));
    return { status: session.status };
  }

  @Post('status')
  @HttpCode(200)
  @ApiOperation({ summary: 'Report a failure', description: 'The session becomes `failed` with the message; its container is removed.' })
  @ApiOkResponse({ type: CallbackAcceptedResponse })
  async status(@Body() body: StatusCallbackDto, @Headers('authorization') authorization?: string): Promise<CallbackAcceptedResponse> {
    const session = await this.callbacks.reportFailure(body.sessionId, bearer(authorization), body.error_message);
    return { status: session.status };
  }
}
