import { Controller, Get, Inject, Logger, Res } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { CONTAINER_PLATFORM, ContainerPlatform } from '../platform/container-platform';
import { Public } from '../tenancy/public.decorator';
import { SessionJobs } from '../provisioning/session-jobs.service';

const CHECK_TIMEOUT_MS = 2000;

class DependencyCheck {
  @ApiProperty({ enum: ['up', 'down'] })
  status: 'up' | 'down';

  @ApiProperty()
  latency_ms: number;

  @ApiProperty({ required: false })
  error?: string;
}

class PlatformCheck extends DependencyCheck {
  @ApiProperty({ enum: ['docker', 'kubernetes'] })
  name: string;
}

class HealthChecks {
  @ApiProperty({ type: DependencyCheck })
  database: DependencyCheck;

  @ApiProperty({ type: DependencyCheck })
  redis: DependencyCheck;

  @ApiProperty({ type: PlatformCheck })
  platform: PlatformCheck;
}

class HealthResponse {
  @ApiProperty({ enum: ['ok', 'degraded'] })
  status: 'ok' | 'degraded';

  @ApiProperty({ type: HealthChecks })
  checks: HealthChecks;
}

const logger = new Logger('Health');

/**
 * Runs one probe with a deadline. The response says only up or down: the
 * endpoint is unauthenticated, and driver messages can carry host names,
 * user names or socket paths. The detail goes to the log.
 */
async function check(name: string, probe: () => Promise<unknown>): Promise<DependencyCheck> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: 'up', latency_ms: Date.now() - started };
  } catch (error) {
    const message = (error as Error).message;
    logger.warn({ msg: 'health check failed', dependency: name, error: message });
    const timedOut = message.startsWith('no answer within');
    return { status: 'down', latency_ms: Date.now() - started, error: timedOut ? message : 'unreachable' };
  } finally {
    clearTimeout(timer);
  }
}

@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly jobs: SessionJobs,
    @Inject(CONTAINER_PLATFORM) private readonly platform: ContainerPlatform,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Health of the API and what it depends on', description: '200 when all are up, 503 otherwise.' })
  @ApiOkResponse({ type: HealthResponse })
  @ApiServiceUnavailableResponse({ type: HealthResponse })
  async health(@Res({ passthrough: true }) response: Response): Promise<HealthResponse> {
    const [database, redis, platform] = await Promise.all([
      check('database', () => this.dataSource.query('SELECT 1')),
      check('redis', () => this.jobs.pingRedis()),
      check('platform', () => this.platform.ping()),
    ]);
    const healthy = [database, redis, platform].every((result) => result.status === 'up');
    response.status(healthy ? 200 : 503);
    return { status: healthy ? 'ok' : 'degraded', checks: { database, redis, platform: { name: this.platform.name, ...platform } } };
  }
}
