import { Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Query, Type } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiConflictResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
import { IsOptional, IsString, MaxLength } from 'class-validator';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { ErrorResponse } from '../sessions/dtos/session.response';
import { SessionKind } from '../sessions/session-status';
import { CurrentPrincipal, Principal } from '../tenancy/principal';
import { VolumesRepository } from './volumes.repository';

const uuid = new ParseUUIDPipe({ version: undefined, errorHttpStatusCode: 400 });

class VolumeQuery {
  @ApiPropertyOptional({ description: 'Only this owner’s.' })
  @IsOptional()
  @MaxLength(255)
  @IsString()
  owner?: string;
}

class VolumeResponse {
  @ApiProperty({ format: 'uuid' }) id: string;
  @ApiProperty({ example: 'alice@example.com', description: '"" when it belongs to no particular owner.' }) owner: string;
  @ApiProperty({ example: 'default' }) name: string;
  @ApiProperty({ format: 'date-time' }) created_at: string;
  @ApiProperty({ format: 'date-time' }) last_used_at: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'The session holding it now, if any.' }) session_id: string | null;
}

/**
 * Persistent storage of one kind (browser profiles, terminal workspaces),
 * per tenant and owner: list, and delete with its data (refused while a
 * session holds it).
 */
function VolumeEndpointsFor(kind: SessionKind, noun: string): Type<object> {
  @ApiBearerAuth('api-key')
  class Endpoints {
    constructor(
      readonly volumes: VolumesRepository,
      readonly jobs: SessionJobs,
    ) {}

    @Get()
    @ApiOperation({ summary: `List ${noun}s` })
    @ApiOkResponse({ type: [VolumeResponse] })
    async list(@CurrentPrincipal() principal: Principal, @Query() query: VolumeQuery): Promise<VolumeResponse[]> {
      const found = await this.volumes.list({ tenantId: principal.tenantId, kind, owner: query.owner });
      return found.map((volume) => ({
        id: volume.id,
        owner: volume.owner,
        name: volume.name,
        created_at: volume.createdAt.toISOString(),
        last_used_at: volume.lastUsedAt.toISOString(),
        session_id: volume.sessionId,
      }));
    }

    @Delete(':id')
    @HttpCode(204)
    @ApiOperation({
      summary: `Delete a ${noun} and its data`,
      description: `Refused with 409 while a session holds it. Gone at once; its storage is removed in the background.`,
    })
    @ApiNoContentResponse()
    @ApiNotFoundResponse({ type: ErrorResponse })
    @ApiConflictResponse({ type: ErrorResponse })
    async remove(@CurrentPrincipal() principal: Principal, @Param('id', uuid) id: string): Promise<void> {
      const outcome = await this.volumes.delete({ tenantId: principal.tenantId, kind }, id);
      if (outcome === null) throw new DomainException(ErrorCode.NotFound, `No ${noun} with id ${id}`);
      if (outcome === 'in-use') throw new DomainException(ErrorCode.Conflict, `The ${noun} is held by a session; end it first`);
      // A launch with this name now gets a new, empty volume. The old one goes
      // in the background (and the cleanup sweep catches a lost job).
      await this.jobs.removeVolume(outcome);
    }
  }
  return Endpoints;
}

@ApiTags('profiles')
@Controller('api/v1/profiles')
export class ProfilesController extends VolumeEndpointsFor(SessionKind.Browser, 'browser profile') {}

@ApiTags('workspaces')
@Controller('api/v1/workspaces')
export class WorkspacesController extends VolumeEndpointsFor(SessionKind.Terminal, 'workspace') {}
