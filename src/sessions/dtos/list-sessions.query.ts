import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsEnum, IsIn, IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { SESSION_STATUSES, SessionKind, SessionStatus } from '../session-status';

export class ListSessionsQuery {
  @ApiPropertyOptional({ enum: SessionKind, description: 'Only sessions of this kind (on /api/v1/sessions; the kind routes imply it).' })
  @IsOptional()
  @IsEnum(SessionKind, { message: `kind must be one of: ${Object.values(SessionKind).join(', ')}` })
  kind?: SessionKind;

  @ApiPropertyOptional({ enum: SESSION_STATUSES, description: 'Only sessions in this status.' })
  @IsOptional()
  @IsIn(SESSION_STATUSES, { message: `status must be one of: ${SESSION_STATUSES.join(', ')}` })
  status?: SessionStatus;

  @ApiPropertyOptional({ description: 'Only sessions of this owner.', example: 'alice@example.com' })
  @IsOptional()
  @MaxLength(255)
  @IsString()
  owner?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 200, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @Max(200)
  @Min(1)
  @IsInt()
  limit: number = 50;

  @ApiPropertyOptional({ minimum: 0, default: 0 })
  @IsOptional()
  @Type(() => Number)
  @Max(2_147_483_647)
  @Min(0)
  @IsInt()
  offset: number = 0;
}

export class GetSessionQuery {
  @ApiPropertyOptional({
    minimum: 0,
    maximum: 60,
    default: 0,
    description:
      'While the session is `pending` or `starting`, wait up to this many seconds for it to move on ' +
      '(to `started`, or an end state) before answering. 0 answers at once.',
  })
  @IsOptional()
  @Type(() => Number)
  @Max(60)
  @Min(0)
  @IsInt()
  wait_seconds: number = 0;
}
