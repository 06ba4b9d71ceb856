import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, Matches } from 'class-validator';
import { LaunchDto, STORAGE_NAME, STORAGE_NAME_MESSAGE } from '../sessions/dtos/launch.dto';

/** Every field is optional: `POST /api/v1/terminals` with no body works, as in the seed API. */
export class CreateTerminalDto extends LaunchDto {
  @ApiPropertyOptional({
    example: 'project-x',
    description:
      "A persistent home directory for this owner: files written in one session are there in the next. One live session per workspace.",
  })
  @IsOptional()
  @Matches(STORAGE_NAME, { message: `workspace ${STORAGE_NAME_MESSAGE}` })
  workspace?: string;
}
