import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, Max, Min } from 'class-validator';

/** Every field is optional: `POST /api/v1/terminals` with no body works, as in the seed API. */
export class CreateTerminalDto {
  @ApiPropertyOptional({
    description: 'Lifetime in seconds. Defaults to, and may not exceed, TERMINAL_TTL_HOURS.',
    minimum: 1,
    example: 3600,
  })
  @IsOptional()
  @Max(10 * 365 * 86400)
  @Min(1)
  @IsInt()
  ttl_seconds?: number;
}
