import { Controller, Delete, Get, HttpCode, Param } from '@nestjs/common';
import { ApiConflictResponse, ApiNoContentResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { SessionJobs } from '../provisioning/session-jobs.service';
import { ErrorResponse } from '../sessions/dtos/session.response';
import { BrowserProfilesRepository } from './browser-profiles.repository';
import { PROFILE_NAME } from './create-browser.dto';

class ProfileResponse {
  @ApiProperty({ example: 'alice' })
  name: string;

  @ApiProperty({ format: 'date-time' })
  created_at: string;

  @ApiProperty({ format: 'date-time' })
  last_used_at: string;

  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'The live browser session using the profile, if any.' })
  live_session_id: string | null;
}

/** Persistent browser profiles: what exists, and deleting one (with its data). */
@ApiTags('profiles')
@Controller('api/v1/profiles')
export class ProfilesController {
  constructor(
    private readonly profiles: BrowserProfilesRepository,
    private readonly jobs: SessionJobs,
  ) {}

  @Get()
  @ApiOperation({ summary: 'List browser profiles' })
  @ApiOkResponse({ type: [ProfileResponse] })
  async list(): Promise<ProfileResponse[]> {
    return (await this.profiles.list()).map((profile) => ({
      name: profile.name,
      created_at: profile.createdAt.toISOString(),
      last_used_at: profile.lastUsedAt.toISOString(),
      live_session_id: profile.liveSessionId,
    }));
  }

  @Delete(':name')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete a browser profile and its data',
    description: 'Refused with 409 while a live session uses it. The profile is gone at once; its volume is removed in the background.',
  })
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorResponse })
  @ApiConflictResponse({ type: ErrorResponse })
  async remove(@Param('name') name: string): Promise<void> {
    if (!PROFILE_NAME.test(name)) throw new DomainException(ErrorCode.InvalidRequest, 'profile must be 1-64 letters, digits, ".", "_" or "-"');
    const outcome = await this.profiles.delete(name);
    if (outcome === null) throw new DomainException(ErrorCode.NotFound, `No profile named ${name}`);
    if (outcome === 'in-use') throw new DomainException(ErrorCode.Conflict, `Profile ${name} is used by a live session; end it first`);
    // The row is gone: a launch with this name now gets a new, empty volume. The
    // old one goes in the background (and the cleanup sweep catches a lost job).
    await this.jobs.removeVolume(outcome);
  }
}
