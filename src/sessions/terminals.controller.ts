import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { CreateTerminalDto } from './dtos/create-terminal.dto';
import { GetSessionQuery, ListSessionsQuery } from './dtos/list-sessions.query';
import { CreatedSessionResponse, ErrorResponse, SessionListResponse, SessionResponse } from './dtos/session.response';
import { SessionKind } from './session-status';
import { SessionUrls } from './session-urls';
import { SessionsService } from './sessions.service';

const uuidPipe = new ParseUUIDPipe({ version: undefined, errorHttpStatusCode: 400 });

/** The seed's Terminal Server API: thin, delegates everything to SessionsService. */
@ApiTags('terminals')
@ApiBadRequestResponse({ type: ErrorResponse, description: 'Invalid input; the message names the field.' })
@ApiServiceUnavailableResponse({ type: ErrorResponse, description: 'Postgres or Redis unreachable; nothing was changed.' })
@Controller('api/v1/terminals')
export class TerminalsController {
  constructor(
    private readonly sessions: SessionsService,
    private readonly urls: SessionUrls,
  ) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Create a terminal',
    description: 'Records the session as `pending` and queues its provisioning. Poll GET until `started`.',
  })
  @ApiAcceptedResponse({ type: CreatedSessionResponse })
  async create(@Body() body: CreateTerminalDto): Promise<CreatedSessionResponse> {
    const { session, accessToken } = await this.sessions.create(SessionKind.Terminal, { ttlSeconds: body.ttl_seconds });
    return { ...SessionResponse.from(session, this.urls), access_token: accessToken };
  }

  @Get()
  @ApiOperation({ summary: 'List terminals', description: 'Newest first, paginated, optionally filtered by status.' })
  @ApiOkResponse({ type: SessionListResponse })
  async list(@Query() query: ListSessionsQuery): Promise<SessionListResponse> {
    const { items, total } = await this.sessions.list({ kind: SessionKind.Terminal, ...query });
    return { items: items.map((item) => SessionResponse.from(item, this.urls)), total, limit: query.limit, offset: query.offset };
  }

  @Get(':id')
  @ApiOperation({
    summary: 'Get a terminal',
    description: 'With `wait_seconds`, a session still starting is answered as soon as it is `started` (or ended): no polling needed.',
  })
  @ApiOkResponse({ type: SessionResponse })
  @ApiNotFoundResponse({ type: ErrorResponse })
  async get(@Param('id', uuidPipe) id: string, @Query() query: GetSessionQuery): Promise<SessionResponse> {
    return SessionResponse.from(await this.sessions.getWhenSettled(id, SessionKind.Terminal, query.wait_seconds), this.urls);
  }

  @Delete(':id')
  @ApiOperation({
    summary: 'Delete a terminal',
    description: 'Idempotent. The status becomes `stopped` at once and the container is removed in the background.',
  })
  @ApiOkResponse({ type: SessionResponse })
  @ApiNotFoundResponse({ type: ErrorResponse })
  async remove(@Param('id', uuidPipe) id: string): Promise<SessionResponse> {
    return SessionResponse.from(await this.sessions.stop(id, SessionKind.Terminal), this.urls);
  }
}
