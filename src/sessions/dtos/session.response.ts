import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { SessionKind, SessionStatus } from '../session-status';
import { Session } from '../session.entity';
import { SessionUrls } from '../session-urls';

/** The public shape of a session; field names follow the Terminal Server seed API. */
export class SessionResponse {
  @ApiProperty({ format: 'uuid' })
  id: string;

  @ApiProperty({ enum: SessionKind })
  kind: SessionKind;

  @ApiProperty({ enum: SessionStatus })
  status: SessionStatus;

  @ApiProperty({
    type: String,
    nullable: true,
    example: 'http://550e8400-e29b-41d4-a716-446655440000.localhost:3000/',
    description:
      'The session on its own origin, through the gateway: open `tunnel_url?token=<access_token>` in a browser ' +
      '(the token becomes a cookie for this origin only). Set once the session is `started`.',
  })
  tunnel_url: string | null;

  @ApiProperty({
    type: String,
    nullable: true,
    example: 'http://127.0.0.1:3000/s/550e8400-e29b-41d4-a716-446655440000/',
    description:
      'The same session under PUBLIC_URL, for programs that cannot resolve per-session host names. ' +
      'Takes `Authorization: Bearer <access_token>` or `?token=`; never uses cookies. Set once `started`.',
  })
  path_url: string | null;

  @ApiProperty({ type: String, nullable: true })
  container_id: string | null;

  @ApiProperty({ type: String, nullable: true })
  container_name: string | null;

  @ApiProperty({ type: String, nullable: true, description: 'Why the session failed, when it did.' })
  error_message: string | null;

  @ApiProperty({ format: 'date-time' })
  created_at: string;

  @ApiProperty({ format: 'date-time' })
  updated_at: string;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  started_at: string | null;

  @ApiProperty({ format: 'date-time' })
  expires_at: string;

  @ApiProperty({ type: String, format: 'date-time', nullable: true, description: 'When the session ended.' })
  deleted_at: string | null;

  static from(session: Session, urls: SessionUrls): SessionResponse {
    const started = session.status === SessionStatus.Started;
    return {
      id: session.id,
      kind: session.kind,
      status: session.status,
      tunnel_url: started ? urls.pageUrl(session.id) : null,
      path_url: started ? urls.pathUrl(session.id) : null,
      container_id: session.containerId,
      container_name: session.containerName,
      error_message: session.errorMessage,
      created_at: session.createdAt.toISOString(),
      updated_at: session.updatedAt.toISOString(),
      started_at: session.startedAt?.toISOString() ?? null,
      expires_at: session.expiresAt.toISOString(),
      deleted_at: session.deletedAt?.toISOString() ?? null,
    };
  }
}

export class CreatedSessionResponse extends SessionResponse {
  @ApiProperty({
    description:
      'Secret that opens the session, shown only in this response (Berth stores its hash). ' +
      'Open `tunnel_url?token=<access_token>` in a browser, or send `Authorization: Bearer <access_token>`.',
  })
  access_token: string;
}

export class SessionListResponse {
  @ApiProperty({ type: [SessionResponse] })
  items: SessionResponse[];

  @ApiProperty({ description: 'Number of sessions matching the filter.' })
  total: number;

  @ApiProperty()
  limit: number;

  @ApiProperty()
  offset: number;
}

export class ErrorResponse {
  @ApiProperty({ example: 400 })
  statusCode: number;

  @ApiProperty({ example: 'Bad Request' })
  error: string;

  @ApiProperty({ oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] })
  message: string | string[];

  @ApiPropertyOptional({ example: 'session_not_found' })
  code?: string;
}
