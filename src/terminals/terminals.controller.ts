import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiAcceptedResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CreatedSessionResponse } from '../sessions/dtos/session.response';
import { SessionEndpointsFor } from '../sessions/session-endpoints';
import { SessionKind } from '../sessions/session-status';
import { CreateTerminalDto } from './create-terminal.dto';

/** The seed's Terminal Server API. Reading and ending are the shared session routes; launching is the terminal's own. */
@ApiTags('terminals')
@Controller('api/v1/terminals')
export class TerminalsController extends SessionEndpointsFor(SessionKind.Terminal, 'terminal') {
  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Create a terminal',
    description: 'Records the session as `pending` and queues its provisioning. GET it with `wait_seconds` to learn when it is `started`.',
  })
  @ApiAcceptedResponse({ type: CreatedSessionResponse })
  async create(@Body() body: CreateTerminalDto): Promise<CreatedSessionResponse> {
    const { session, accessToken } = await this.sessions.create(SessionKind.Terminal, { ttlSeconds: body.ttl_seconds });
    return this.presenter.created(session, accessToken);
  }
}
