import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsBoolean, IsInt, IsOptional, IsUrl, Matches, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { LaunchDto, STORAGE_NAME, STORAGE_NAME_MESSAGE } from '../sessions/dtos/launch.dto';

export class ViewportDto {
  @ApiPropertyOptional({ minimum: 320, maximum: 3840, example: 1280 })
  @Max(3840)
  @Min(320)
  @IsInt()
  width: number;

  @ApiPropertyOptional({ minimum: 240, maximum: 2160, example: 720 })
  @Max(2160)
  @Min(240)
  @IsInt()
  height: number;
}

/** Every field is optional: `POST /api/v1/browsers` with no body launches a headful Chromium on about:blank. */
export class CreateBrowserDto extends LaunchDto {
  @ApiPropertyOptional({
    example: 'https://example.com/',
    description:
      'Opened in the first tab. http or https only; a host resolving to a loopback, private, link-local, CGNAT or ' +
      'metadata address is refused unless START_URL_ALLOW permits it (redirects at launch are checked too).',
  })
  @IsOptional()
  @MaxLength(2048)
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] }, { message: 'start_url must be an http or https URL' })
  start_url?: string;

  @ApiPropertyOptional({ default: false, description: 'Run Chromium without a screen (no live view). Headful by default.' })
  @IsOptional()
  @IsBoolean()
  headless?: boolean;

  @ApiPropertyOptional({ type: ViewportDto, description: 'Window (and, headful, screen) size. Default 1280x720.' })
  @IsOptional()
  @ValidateNested()
  @Type(() => ViewportDto)
  viewport?: ViewportDto;

  @ApiPropertyOptional({
    example: 'alice',
    description:
      "Keep cookies (session cookies too), localStorage and settings in the owner's persistent profile of this name. " +
      'One live session per profile: launching with a profile a live session uses answers 200 with that session (and a new access token).',
  })
  @IsOptional()
  @Matches(STORAGE_NAME, { message: `profile ${STORAGE_NAME_MESSAGE}` })
  profile?: string;

  @ApiPropertyOptional({ default: false, description: 'The live view shows the screen but refuses keyboard and mouse input (enforced in the session).' })
  @IsOptional()
  @IsBoolean()
  view_only?: boolean;
}
