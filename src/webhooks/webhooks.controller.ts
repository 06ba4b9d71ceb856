import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsIn, IsOptional, IsString, MaxLength } from 'class-validator';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { deriveSecret } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { ErrorResponse } from '../sessions/dtos/session.response';
import { CurrentPrincipal, Principal } from '../tenancy/principal';
import { WebhookUrlPolicy } from './webhook-url-policy';
import { Webhook, WebhooksRepository } from './webhooks.repository';

const EVENT_TYPES = [
  'created',
  'queued',
  'starting',
  'provisioning',
  'started',
  'handed_out',
  'heartbeat',
  'extended',
  'expiring_soon',
  'stopping',
  'stopped',
  'expired',
  'failed',
] as const;

class CreateWebhookDto {
  @ApiProperty({ example: 'https://hooks.example.com/berth' })
  @MaxLength(2048)
  @IsString()
  url: string;

  @ApiPropertyOptional({ enum: EVENT_TYPES, isArray: true, description: 'Only these event types; all when absent.' })
  @IsOptional()
  @ArrayMaxSize(EVENT_TYPES.length)
  @IsIn(EVENT_TYPES, { each: true, message: `each event must be one of: ${EVENT_TYPES.join(', ')}` })
  @IsArray()
  events?: string[];
}

class WebhookResponse {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty() url: string;
  @ApiProperty({ type: [String], nullable: true }) events: string[] | null;
  @ApiProperty({ format: 'date-time' }) created_at: string;
}

class CreatedWebhookResponse extends WebhookResponse {
  @ApiProperty({
    description:
      'Signing secret, shown only here. Every delivery carries `Berth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`; ' +
      'check it and refuse timestamps older than 5 minutes.',
  })
  secret: string;
}

function present(webhook: Webhook): WebhookResponse {
  return { id: webhook.id, url: webhook.url, events: webhook.events, created_at: webhook.createdAt.toISOString() };
}

/**
 * A tenant's webhook endpoints: every session event (the same as the SSE
 * stream, `expiring_soon` included) POSTed as JSON, signed, retried with
 * backoff until the endpoint answers 2xx.
 */
@ApiTags('webhooks')
@ApiBearerAuth('api-key')
@Controller('api/v1/webhooks')
export class WebhooksController {
  constructor(
    private readonly webhooks: WebhooksRepository,
    private readonly urls: WebhookUrlPolicy,
    private readonly config: BerthConfig,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Register a webhook', description: 'The URL must be http(s) and public unless WEBHOOK_URL_ALLOW permits it.' })
  @ApiCreatedResponse({ type: CreatedWebhookResponse })
  async create(@CurrentPrincipal() principal: Principal, @Body() body: CreateWebhookDto): Promise<CreatedWebhookResponse> {
    await this.urls.check(body.url);
    const webhook = await this.webhooks.create(principal.tenantId, body.url, body.events ?? null);
    return { ...present(webhook), secret: deriveSecret(this.config.secretKey, 'webhook', webhook.id) };
  }

  @Get()
  @ApiOperation({ summary: "List the tenant's webhooks" })
  @ApiOkResponse({ type: [WebhookResponse] })
  async list(@CurrentPrincipal() principal: Principal): Promise<WebhookResponse[]> {
    return (await this.webhooks.list(principal.tenantId)).map(present);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a webhook' })
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorResponse })
  async remove(@CurrentPrincipal() principal: Principal, @Param('id', new ParseUUIDPipe({ version: undefined, errorHttpStatusCode: 400 })) id: string): Promise<void> {
    if (!(await this.webhooks.delete(principal.tenantId, id))) throw new DomainException(ErrorCode.NotFound, `No webhook with id ${id}`);
  }
}
