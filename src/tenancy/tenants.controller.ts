import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Patch, Post } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiForbiddenResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
import { IsInt, IsOptional, Matches, Max, Min } from 'class-validator';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { generateToken, hashToken } from '../common/tokens';
import { ErrorResponse } from '../sessions/dtos/session.response';
import { AdminOnly } from './public.decorator';
import { ApiKey, Tenant, TenantsRepository } from './tenants.repository';

const uuid = new ParseUUIDPipe({ version: undefined, errorHttpStatusCode: 400 });
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NAME_MESSAGE = 'name must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit';

class TenantLimitsDto {
  @ApiPropertyOptional({ nullable: true, minimum: 0, description: 'Live sessions the tenant may have at once; null: the configured default.' })
  @IsOptional()
  @Max(1_000_000)
  @Min(0)
  @IsInt()
  max_sessions?: number | null;

  @ApiPropertyOptional({ nullable: true, minimum: 0, description: 'Live sessions one owner may have at once; null: the configured default.' })
  @IsOptional()
  @Max(1_000_000)
  @Min(0)
  @IsInt()
  max_sessions_per_owner?: number | null;
}

class CreateTenantDto extends TenantLimitsDto {
  @ApiProperty({ example: 'acme' })
  @Matches(NAME, { message: NAME_MESSAGE })
  name: string;
}

class CreateKeyDto {
  @ApiProperty({ example: 'ci-runner' })
  @Matches(NAME, { message: NAME_MESSAGE })
  name: string;
}

class TenantResponse {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty() name: string;
  @ApiProperty({ type: Number, nullable: true }) max_sessions: number | null;
  @ApiProperty({ type: Number, nullable: true }) max_sessions_per_owner: number | null;
  @ApiProperty({ format: 'date-time' }) created_at: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) disabled_at: string | null;
}

class KeyResponse {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty() name: string;
  @ApiProperty({ example: 'bk_3_ogNQc', description: 'The start of the key, to tell keys apart.' }) prefix: string;
  @ApiProperty({ format: 'date-time' }) created_at: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) revoked_at: string | null;
}

class CreatedKeyResponse extends KeyResponse {
  @ApiProperty({ description: 'The key itself, shown only in this response (Berth stores its SHA-256).' })
  key: string;
}

function tenantResponse(tenant: Tenant): TenantResponse {
  return {
    id: tenant.id,
    name: tenant.name,
    max_sessions: tenant.maxSessions,
    max_sessions_per_owner: tenant.maxSessionsPerOwner,
    created_at: tenant.createdAt.toISOString(),
    disabled_at: tenant.disabledAt?.toISOString() ?? null,
  };
}

function keyResponse(key: ApiKey): KeyResponse {
  return { id: key.id, name: key.name, prefix: key.prefix, created_at: key.createdAt.toISOString(), revoked_at: key.revokedAt?.toISOString() ?? null };
}

/** Tenants and their API keys; admin key only. A revoked key stops working on every replica within a second. */
@ApiTags('tenants (admin)')
@ApiBearerAuth('api-key')
@ApiForbiddenResponse({ type: ErrorResponse, description: 'Not the admin key.' })
@AdminOnly()
@Controller('api/v1/tenants')
export class TenantsController {
  constructor(private readonly tenants: TenantsRepository) {}

  @Post()
  @ApiOperation({ summary: 'Create a tenant' })
  @ApiCreatedResponse({ type: TenantResponse })
  @ApiConflictResponse({ type: ErrorResponse })
  async create(@Body() body: CreateTenantDto): Promise<TenantResponse> {
    const tenant = await this.tenants.createTenant(body.name, { maxSessions: body.max_sessions ?? null, maxSessionsPerOwner: body.max_sessions_per_owner ?? null });
    if (!tenant) throw new DomainException(ErrorCode.Conflict, `A tenant named ${body.name} exists`);
    return tenantResponse(tenant);
  }

  @Get()
  @ApiOperation({ summary: 'List tenants' })
  @ApiOkResponse({ type: [TenantResponse] })
  async list(): Promise<TenantResponse[]> {
    return (await this.tenants.tenants()).map(tenantResponse);
  }

  @Patch(':id')
  @ApiOperation({ summary: "Change a tenant's limits" })
  @ApiOkResponse({ type: TenantResponse })
  @ApiNotFoundResponse({ type: ErrorResponse })
  async update(@Param('id', uuid) id: string, @Body() body: TenantLimitsDto): Promise<TenantResponse> {
    return tenantResponse(this.found(await this.tenants.updateTenant(id, { maxSessions: body.max_sessions, maxSessionsPerOwner: body.max_sessions_per_owner }), id));
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Disable a tenant', description: 'Its keys stop working at once; its sessions run to their end.' })
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorResponse })
  async disable(@Param('id', uuid) id: string): Promise<void> {
    this.found(await this.tenants.disableTenant(id), id);
  }

  @Post(':id/keys')
  @ApiOperation({ summary: 'Create an API key for a tenant', description: 'The key is shown once.' })
  @ApiCreatedResponse({ type: CreatedKeyResponse })
  @ApiNotFoundResponse({ type: ErrorResponse })
  async createKey(@Param('id', uuid) id: string, @Body() body: CreateKeyDto): Promise<CreatedKeyResponse> {
    this.found(await this.tenants.tenant(id), id);
    const key = `bk_${generateToken()}`;
    const created = await this.tenants.createKey(id, body.name, hashToken(key), key.slice(0, 10));
    return { ...keyResponse(created), key };
  }

  @Get(':id/keys')
  @ApiOperation({ summary: "List a tenant's keys" })
  @ApiOkResponse({ type: [KeyResponse] })
  async keys(@Param('id', uuid) id: string): Promise<KeyResponse[]> {
    this.found(await this.tenants.tenant(id), id);
    return (await this.tenants.keys(id)).map(keyResponse);
  }

  @Delete(':id/keys/:keyId')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke a key', description: 'Refused everywhere within a second.' })
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorResponse })
  async revoke(@Param('id', uuid) id: string, @Param('keyId', uuid) keyId: string): Promise<void> {
    if (!(await this.tenants.revokeKey(id, keyId))) throw new DomainException(ErrorCode.NotFound, `No key ${keyId} in tenant ${id}`);
  }

  private found<T>(value: T | null, id: string): T {
    if (!value) throw new DomainException(ErrorCode.NotFound, `No tenant with id ${id}`);
    return value;
  }
}
