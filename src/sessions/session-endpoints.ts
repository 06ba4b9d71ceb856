import { Delete, Get, Param, ParseUUIDPipe, Query, Type } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { GetSessionQuery, ListSessionsQuery } from './dtos/list-sessions.query';
import { ErrorResponse, SessionListResponse, SessionResponse } from './dtos/session.response';
import { SessionPresenter } from './session-presenter';
import { SessionKind } from './session-status';
import { SessionsService } from './sessions.service';
import { CurrentPrincipal, Principal } from '../tenancy/principal';

export const uuidPipe = new ParseUUIDPipe({ version: undefined, errorHttpStatusCode: 400 });

export interface SessionEndpoints {
  readonly sessions: SessionsService;
  readonly presenter: SessionPresenter;
  list(principal: Principal, query: ListSessionsQuery): Promise<SessionListResponse>;
  get(principal: Principal, id: string, query: GetSessionQuery): Promise<SessionResponse>;
  remove(principal: Principal, id: string): Promise<SessionResponse>;
}

/**
 * Read and end routes, the same for every kind: `/api/v1/terminals`,
 * `/api/v1/browsers` and `/api/v1/sessions` (every kind) extend the class this
 * returns and add only their own launch route. Thin: SessionsService decides.
 */
export function SessionEndpointsFor(kind: SessionKind | undefined, noun: string): Type<SessionEndpoints> {
  const plural = `${noun}s`;

  @ApiBearerAuth('api-key')
  @ApiUnauthorizedResponse({ type: ErrorResponse, description: 'No valid API key.' })
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
    async list(@CurrentPrincipal() principal: Principal, @Query() query: ListSessionsQuery): Promise<SessionListResponse> {
      const { items, total } = await this.sessions.list(principal, {
        kind: kind ?? query.kind,
        status: query.status,
        owner: query.owner,
        limit: query.limit,
        offset: query.offset,
      });
      return { items: await Promise.all(items.map((item) => this.presenter.present(item))), total, limit: query.limit, offset: query.offset };
    }

    @Get(':id')
    @ApiOperation({
      summary: `Get a ${noun}`,
      description: 'With `wait_seconds`, a session still starting is answered as soon as it is `started` (or ended): no polling needed.',
    })
    @ApiOkResponse({ type: SessionResponse })
    @ApiNotFoundResponse({ type: ErrorResponse })
    async get(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string, @Query() query: GetSessionQuery): Promise<SessionResponse> {
      return this.presenter.present(await this.sessions.getWhenSettled(principal, id, kind, query.wait_seconds));
    }

    @Delete(':id')
    @ApiOperation({
      summary: `Delete a ${noun}`,
      description:
        'Idempotent. The status becomes `stopping` at once (the session refuses its users from then on) and `stopped` ' +
        'once its container is gone (GET with `wait_seconds` to wait for it).',
    })
    @ApiOkResponse({ type: SessionResponse })
    @ApiNotFoundResponse({ type: ErrorResponse })
    async remove(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string): Promise<SessionResponse> {
      return this.presenter.present(await this.sessions.stop(principal, id, kind));
    }
  }
  return Endpoints;
}
