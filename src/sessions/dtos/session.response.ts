import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { SESSION_STATUSES, SessionKind, SessionStatus } from '../session-status';

const EXAMPLE_ID = '550e8400-e29b-41d4-a716-446655440000';

/** The public shape of a session of any kind; field names follow the Terminal Server seed API. */
export class SessionResponse {
  @ApiProperty({ format: 'uuid', example: EXAMPLE_ID })
  id: string;

  @ApiProperty({ enum: SessionKind })
  kind: SessionKind;

  @ApiProperty({ enum: SESSION_STATUSES })
  status: SessionStatus;

  @ApiProperty({
    type: String,
    nullable: true,
    example: `http://${EXAMPLE_ID}.localhost:3000/`,
    description:
      'The session on its own origin, through the gateway: open `tunnel_url?token=<access_token>` in a browser ' +
      '(the token becomes a cookie for this origin only). Set once the session is `started`.',
  })
  tunnel_url: string | null;

  @ApiProperty({
    type: String,
    nullable: true,
    example: `http://127.0.0.1:3000/s/${EXAMPLE_ID}/`,
    description:
      'The same session under PUBLIC_URL, for programs that cannot resolve per-session host names. ' +
      'Takes `Authorization: Bearer <access_token>` or `?token=`; never uses cookies. Set once `started`.',
  })
  path_url: string | null;

  @ApiProperty({
    type: String,
    nullable: true,
    example: `ws://127.0.0.1:3000/s/${EXAMPLE_ID}/devtools/browser`,
    description:
      'Browsers: the Chrome DevTools Protocol endpoint for `chromium.connectOverCDP(cdp_url)` (playwright-core) or ' +
      '`puppeteer.connect({ browserWSEndpoint: cdp_url })`. Carries `?token=` in the response that created the ' +
      'session; elsewhere send `Authorization: Bearer <access_token>` (the `headers` option of both clients). ' +
      '`/json/version` and `/json/list` answer under path_url. Null for terminals.',
  })
  cdp_url: string | null;

  @ApiProperty({
    type: String,
    nullable: true,
    example: `http://${EXAMPLE_ID}.localhost:3000/`,
    description: "Headful browsers: a page with the session's live screen (noVNC), interactive unless `view_only`. Null otherwise.",
  })
  live_view_url: string | null;

  @ApiProperty({ type: Object, description: 'What the session was launched with (browsers: start_url, headless, viewport, view_only).' })
  options: Record<string, unknown>;

  @ApiProperty({ type: String, nullable: true, example: 'alice@example.com', description: 'The end user the session is for.' })
  owner: string | null;

  @ApiProperty({ type: String, nullable: true, description: 'Terminals: the persistent workspace (home directory) the session uses.' })
  workspace: string | null;

  @ApiProperty({ type: String, nullable: true, description: 'Browsers: the persistent profile the session uses.' })
  profile: string | null;

  @ApiProperty({
    type: Number,
    nullable: true,
    description: 'While `pending` because MAX_RUNNING_SESSIONS is reached: its place in line (1 starts next).',
  })
  queue_position: number | null;

  @ApiProperty({ type: Number, nullable: true, description: 'Stopped after this long without traffic or heartbeat.' })
  idle_timeout_seconds: number | null;

  @ApiProperty({ type: String, nullable: true, enum: ['start', 'gateway', 'heartbeat', 'launch'], description: 'What the last activity was.' })
  last_activity_source: string | null;

  @ApiProperty({
    type: String,
    nullable: true,
    enum: ['deleted', 'ttl', 'idle', 'owner_removed', 'failed'],
    description: 'Why the session ended (or is ending).',
  })
  end_reason: string | null;

  @ApiProperty({ type: String, nullable: true, description: 'While `stopping`: why the last attempt to remove the container failed (it is retried).' })
  removal_error: string | null;

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

  @ApiProperty({ type: String, format: 'date-time', nullable: true, description: 'Last traffic through the gateway (recorded every few seconds).' })
  last_activity_at: string | null;

  @ApiProperty({ format: 'date-time' })
  expires_at: string;

  @ApiProperty({ type: String, format: 'date-time', nullable: true, description: 'When the session ended.' })
  deleted_at: string | null;
}

export class CreatedSessionResponse extends SessionResponse {
  @ApiProperty({
    example: '3_ogNQcFSx5Iwl5_QQI5lYWIR8ADB_LFaXS2jle_Snk',
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
