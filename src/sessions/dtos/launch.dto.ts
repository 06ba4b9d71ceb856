import { ApiPropertyOptional } from '@nestjs/swagger';
import { DomainException, ErrorCode } from '../../common/domain.exception';
import { IsBoolean, IsInt, IsOptional, IsString, Max, MaxLength, Min, MinLength } from 'class-validator';

/** A profile or workspace name: also part of a volume name, so a conservative alphabet. */
export const STORAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const STORAGE_NAME_MESSAGE = 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit';

/** What every kind's launch accepts. Every field is optional: an empty POST launches with the defaults. */
export class LaunchDto {
  @ApiPropertyOptional({ minimum: 1, example: 3600, description: "Lifetime in seconds. Defaults to, and may not exceed, the kind's TTL (TERMINAL_TTL_HOURS, BROWSER_TTL_HOURS)." })
  @IsOptional()
  @Max(10 * 365 * 86400)
  @Min(1)
  @IsInt()
  ttl_seconds?: number;

  @ApiPropertyOptional({
    example: 1800,
    description: 'Stop the session after this long without traffic or heartbeat. Default IDLE_TIMEOUT_MINUTES; within IDLE_TIMEOUT_MIN_SECONDS..IDLE_TIMEOUT_MAX_SECONDS.',
  })
  @IsOptional()
  @Max(30 * 86400)
  @Min(1)
  @IsInt()
  idle_timeout_seconds?: number;

  @ApiPropertyOptional({ example: 'alice@example.com', description: 'The end user the session is for; quotas, reuse and storage are per owner.' })
  @IsOptional()
  @MaxLength(255)
  @MinLength(1)
  @IsString()
  owner?: string;

  @ApiPropertyOptional({
    default: false,
    description:
      'Return the live session of the same owner (and workspace or profile) with 200 instead of starting another. ' +
      'Ten concurrent identical launches create exactly one session. Counts as activity.',
  })
  @IsOptional()
  @IsBoolean()
  reuse?: boolean;
}


/** The generic part of a launch, from a kind's DTO and the Idempotency-Key header. */
export function launchRequest(body: LaunchDto, idempotencyKey: string | undefined): {
  ttlSeconds?: number;
  idleTimeoutSeconds?: number;
  owner?: string;
  reuse?: boolean;
  idempotencyKey?: string;
} {
  if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) {
    throw new DomainException(ErrorCode.InvalidRequest, 'Idempotency-Key must be 1-255 printable ASCII characters');
  }
  return { ttlSeconds: body.ttl_seconds, idleTimeoutSeconds: body.idle_timeout_seconds, owner: body.owner, reuse: body.reuse, idempotencyKey };
}
