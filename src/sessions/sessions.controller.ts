import { Body, Controller, Delete, Get, Headers, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiProduces, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min, MinLength } from 'class-validator';
import type { Request, Response } from 'express';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { CurrentPrincipal, Principal } from '../tenancy/principal';
import { ErrorResponse, SessionResponse } from './dtos/session.response';
import { SessionEndpointsFor, uuidPipe } from './session-endpoints';
import { SessionEventStream, eventBody } from './session-event-stream';
import { SessionPresenter } from './session-presenter';
import { SessionEventRow } from './sessions.repository';
import { SessionsService } from './sessions.service';

class ExtendDto {
  @ApiProperty({ example: 3600, description: 'The session ends no sooner than this many seconds from now (capped by MAX_SESSION_LIFETIME_HOURS after its creation; a later deadline is kept).' })
  @Max(10 * 365 * 86400)
  @Min(1)
  @IsInt()
  ttl_seconds: number;
}

class OwnerQuery {
  @ApiProperty({ example: 'alice@example.com' })
  @MaxLength(255)
  @MinLength(1)
  @IsString()
  owner: string;
}

class EventsQuery {
  @ApiPropertyOptional({ description: 'Only events after this id (also the Last-Event-ID header of an SSE reconnect).' })
  @IsOptional()
  @Type(() => Number)
  @Min(0)
  @IsInt()
  after?: number;
}

class SessionEventResponse {
  @ApiProperty() id: number;
  @ApiProperty({
    example: 'stopping',
    description:
      'created, queued (data.position), starting, provisioning (data.phase: creating-container, waiting-for-callback), ' +
      'started, handed_out, heartbeat, extended (data.from, data.to), expiring_soon (data.deadline, data.which), ' +
      'stopping (data.reason), stopped, expired, failed (data.error)',
  })
  type: string;
  @ApiProperty({ format: 'uuid' }) session_id: string;
  @ApiProperty({ example: 'key:ci-runner', description: 'Who: an API key (key:<name>), admin, the container, the worker or the system.' }) actor: string;
  @ApiProperty({ type: Object }) data: Record<string, unknown>;
  @ApiProperty({ format: 'date-time' }) created_at: string;
}

class LifecycleResponse {
  @ApiProperty({ type: SessionResponse }) session: SessionResponse;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) last_activity_at: string | null;
  @ApiProperty({ type: String, nullable: true, example: 'heartbeat' }) last_activity_source: string | null;
  @ApiProperty({ type: Number, nullable: true }) idle_timeout_seconds: number | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true, description: 'When it stops if nothing happens meanwhile.' }) idle_deadline: string | null;
  @ApiProperty({ format: 'date-time', description: 'When it ends however busy it is (the TTL).' }) hard_deadline: string;
  @ApiProperty({ format: 'date-time', description: 'The furthest `extend` can move the hard deadline.' }) max_deadline: string;
  @ApiProperty({ type: [SessionEventResponse], description: 'Who extended it, when, from and to.' }) extensions: SessionEventResponse[];
}

class StoppedSessionsResponse {
  @ApiProperty({ type: [SessionResponse] }) items: SessionResponse[];
}

/**
 * Every kind at once: list (filter by kind, status, owner), show and end any
 * session; keep it alive, extend it, explain its lifetime, follow its events.
 */
@ApiTags('sessions')
@Controller('api/v1/sessions')
export class SessionsController extends SessionEndpointsFor(undefined, 'session') {
  constructor(
    sessions: SessionsService,
    presenter: SessionPresenter,
    private readonly stream: SessionEventStream,
  ) {
    super(sessions, presenter);
  }

  @Delete()
  @ApiOperation({ summary: "End every live session of an owner", description: 'Each becomes `stopping`, then `stopped` once its container is gone.' })
  @ApiOkResponse({ type: StoppedSessionsResponse })
  async removeByOwner(@CurrentPrincipal() principal: Principal, @Query() query: OwnerQuery): Promise<StoppedSessionsResponse> {
    const stopped = await this.sessions.stopOwner(principal, query.owner);
    return { items: await Promise.all(stopped.map((session) => this.presenter.present(session))) };
  }

  @Post(':id/heartbeat')
  @HttpCode(200)
  @ApiOperation({ summary: 'Keep a session alive', description: 'Counts as activity: the idle deadline moves to now + its idle timeout.' })
  @ApiOkResponse({ type: SessionResponse })
  @ApiNotFoundResponse({ type: ErrorResponse })
  async heartbeat(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string): Promise<SessionResponse> {
    return this.presenter.present(await this.sessions.heartbeat(principal, id));
  }

  @Post(':id/extend')
  @HttpCode(200)
  @ApiOperation({ summary: "Move a session's hard deadline", description: 'To now + ttl_seconds, capped by MAX_SESSION_LIFETIME_HOURS after its creation; never earlier than the current deadline. Recorded with who asked.' })
  @ApiOkResponse({ type: SessionResponse })
  @ApiNotFoundResponse({ type: ErrorResponse })
  async extend(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string, @Body() body: ExtendDto): Promise<SessionResponse> {
    return this.presenter.present(await this.sessions.extend(principal, id, body.ttl_seconds));
  }

  @Get(':id/lifecycle')
  @ApiOperation({ summary: 'Why a session is alive', description: 'Last activity and its source, the idle and hard deadlines, and who extended it.' })
  @ApiOkResponse({ type: LifecycleResponse })
  @ApiNotFoundResponse({ type: ErrorResponse })
  async lifecycle(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string): Promise<LifecycleResponse> {
    const life = await this.sessions.lifecycle(principal, id);
    return {
      session: await this.presenter.present(life.session),
      last_activity_at: life.session.lastActivityAt?.toISOString() ?? null,
      last_activity_source: life.session.lastActivitySource,
      idle_timeout_seconds: life.session.idleTimeoutSeconds,
      idle_deadline: life.idleDeadline?.toISOString() ?? null,
      hard_deadline: life.hardDeadline.toISOString(),
      max_deadline: life.maxDeadline.toISOString(),
      extensions: life.extensions.map((event) => eventBody(event) as unknown as SessionEventResponse),
    };
  }

  @Get(':id/audit')
  @ApiOperation({ summary: "A session's audit trail", description: 'Who created, handed out, extended, kept alive and stopped it, and why it ended.' })
  @ApiOkResponse({ type: [SessionEventResponse] })
  @ApiNotFoundResponse({ type: ErrorResponse })
  async audit(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string, @Query() query: EventsQuery): Promise<SessionEventResponse[]> {
    const events: SessionEventRow[] = await this.sessions.events(principal, id, query.after ?? 0);
    return events.map((event) => eventBody(event) as unknown as SessionEventResponse);
  }

  @Get(':id/events')
  @ApiOperation({
    summary: "Follow a session's events (Server-Sent Events)",
    description:
      'The history, then each status change and start-up phase as it happens (queued with position, creating ' +
      'container, waiting for callback, started, stopping, stopped with reason, expiring_soon...). Ends after the ' +
      'final status. Reconnect with Last-Event-ID to resume.',
  })
  @ApiProduces('text/event-stream')
  @ApiNotFoundResponse({ type: ErrorResponse })
  async events(
    @CurrentPrincipal() principal: Principal,
    @Param('id', uuidPipe) id: string,
    @Query() query: EventsQuery,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const after = lastEventId !== undefined ? Number(lastEventId) : (query.after ?? 0);
    if (!Number.isSafeInteger(after) || after < 0) throw new DomainException(ErrorCode.InvalidRequest, 'Last-Event-ID must be an event id');
    const session = await this.sessions.get(principal, id);
    await this.stream.stream(session, req, res, after);
  }
}
