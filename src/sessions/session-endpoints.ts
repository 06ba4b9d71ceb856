import { Delete, Get, Param, ParseUUIDPipe, Query, Type } from '@nestjs/common';
import { ApiBadRequestResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse } from '@nestjs/swagger';
import { GetSessionQuery, ListSessionsQuery } from './dtos/list-sessions.query';
import { ErrorResponse, SessionListResponse, SessionResponse } from './dtos/session.response';
import { SessionPresenter } from './session-presenter';
import { SessionKind } from './session-status';
import { SessionsService } from './sessions.service';

export const uuidPipe = new ParseUUIDPipe({ version: undefined, errorHttpStatusCode: 400 });

export interface SessionEndpoints {
  readonly sessions: SessionsService;
  readonly presenter: SessionPresenter;
  list(query: ListSessionsQuery): Promise<SessionListResponse>;
  get(id: string, query: GetSessionQuery): Promise<SessionResponse>;
  remove(id: string): Promise<SessionResponse>;
}

/**
 * Read and end routes, the same for every kind: `/api/v1/terminals`,
 * `/api/v1/browsers` and `/api/v1/sessions` (every kind) extend the class this
 * returns and add only their own launch route. Thin: SessionsService decides.
 */
export function SessionEndpointsFor(kind: SessionKind | undefined, noun: string): Type<SessionEndpoints> {
  const plural = `${noun}s`;

  @ApiBadRequestResponse({ type: ErrorResponse, description: 'Invalid input; the message names the field.' })
  @ApiServiceUnavailableResponse({ type: ErrorResponse, description: 'Postgres or Redis unreachable; nothing was changed.' })
  class Endpoints implements SessionEndpoints {
    constructor(
      readonly sessions: SessionsService,
      readonly presenter: SessionPresenter,
    ) {}

    @Get()
    @ApiOperation({ summary: `List ${plural}`, description: 'Newest first, paginated, optionally filtered by status.' })
    @ApiOkResponse({ type: SessionListResponse })
    async list(@Query() query: ListSessionsQuery): Promise<SessionListResponse> {
      const { items, total } = await this.sessions.list({ kind: kind ?? query.kind, status: query.status, limit: query.limit, offset: query.offset });
      return { items: items.map((item) => this.presenter.present(item)), total, limit: query.limit, offset: query.offset };
    }

    @Get(':id')
    @ApiOperation({
      summary: `Get a ${noun}`,
      description: 'With `wait_seconds`, a session still starting is answered as soon as it is `started` (or ended): no polling needed.',
    })
    @ApiOkResponse({ type: SessionResponse })
    @ApiNotFoundResponse({ type: ErrorResponse })
    async get(@Param('id', uuidPipe) id: string, @Query() query: GetSessionQuery): Promise<SessionResponse> {
      return this.presenter.present(await this.sessions.getWhenSettled(id, kind, query.wait_seconds));
    }

    @Delete(':id')
    @ApiOperation({
      summary: `Delete a ${noun}`,
      description: 'Idempotent. The status becomes `stopped` at once and the container is removed in the background.',
    })
    @ApiOkResponse({ type: SessionResponse })
    @ApiNotFoundResponse({ type: ErrorResponse })
    async remove(@Param('id', uuidPipe) id: string): Promise<SessionResponse> {
      return this.presenter.present(await this.sessions.stop(id, kind));
    }
  }
  return Endpoints;
}
