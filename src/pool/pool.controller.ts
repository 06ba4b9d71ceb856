import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiForbiddenResponse, ApiOkResponse, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import { BerthConfig } from '../config/berth-config';
import { KindProfiles } from '../kinds/kind-profiles';
import { ErrorResponse } from '../sessions/dtos/session.response';
import { AdminOnly } from '../tenancy/public.decorator';
import { poolTargets } from './pool-targets';
import { WarmPoolRepository } from './warm-pool.repository';

class PoolVariantResponse {
  @ApiProperty({ example: 'terminal', description: 'terminal, browser-headless or browser-headful' })
  variant!: string;

  @ApiProperty({ example: 'terminal' })
  kind!: string;

  @ApiProperty({ example: 4, description: 'Configured size (POOL_TERMINALS, POOL_BROWSERS_HEADLESS, POOL_BROWSERS_HEADFUL); 0: disabled.' })
  size!: number;

  @ApiProperty({ example: 3, description: 'Ready and unbound: the next launches of this variant get these.' })
  warm!: number;

  @ApiProperty({ example: 1, description: 'Starting, to be ready in a moment.' })
  warming!: number;
}

class PoolResponse {
  @ApiProperty({ type: [PoolVariantResponse] })
  variants!: PoolVariantResponse[];

  @ApiProperty({ example: 3600, description: 'A pool container unclaimed this long is replaced (POOL_MAX_AGE_MINUTES).' })
  max_age_seconds!: number;
}

/** The warm pool as it stands, for operators (admin key only). */
@ApiTags('pool (admin)')
@ApiBearerAuth('api-key')
@ApiForbiddenResponse({ type: ErrorResponse, description: 'Not the admin key.' })
@AdminOnly()
@Controller('api/v1/pool')
export class PoolController {
  constructor(
    private readonly pool: WarmPoolRepository,
    private readonly kinds: KindProfiles,
    private readonly config: BerthConfig,
  ) {}

  @Get()
  @ApiOperation({ summary: 'The warm pool', description: 'Per variant: the configured size, and how many containers are ready or starting.' })
  @ApiOkResponse({ type: PoolResponse })
  async get(): Promise<PoolResponse> {
    const counts = await this.pool.counts(this.config.platform.kind);
    return {
      variants: poolTargets(this.kinds, this.config).map((target) => {
        const count = counts.find((entry) => entry.variant === target.variant);
        return { variant: target.variant, kind: target.kind, size: target.size, warm: count?.warm ?? 0, warming: count?.warming ?? 0 };
      }),
      max_age_seconds: this.config.pool.maxAgeSeconds,
    };
  }
}
