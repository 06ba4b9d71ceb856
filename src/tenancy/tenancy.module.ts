import { Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { ThrottlerStorageRedisService } from '@nest-lab/throttler-storage-redis';
import Redis from 'ioredis';
import { BerthConfig } from '../config/berth-config';
import { ApiKeyGuard } from './api-key.guard';
import { ApiKeyResolver } from './api-key-resolver';
import { KeyThrottlerGuard } from './key-throttler.guard';
import { TenantsController } from './tenants.controller';
import { TenantsRepository } from './tenants.repository';

/** The rate limiter's own Redis connection, failing fast while Redis is down (the guard then lets requests through). */
const RATE_LIMIT_REDIS = Symbol('RateLimitRedis');

@Injectable()
class RateLimitRedisCloser implements OnApplicationShutdown {
  constructor(@Inject(RATE_LIMIT_REDIS) private readonly redis: Redis) {}

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

@Module({
  providers: [
    {
      provide: RATE_LIMIT_REDIS,
      inject: [BerthConfig],
      useFactory: (config: BerthConfig) =>
        new Redis(config.redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, keyPrefix: `${config.redis.queuePrefix}:ratelimit:` }),
    },
    RateLimitRedisCloser,
  ],
  exports: [RATE_LIMIT_REDIS],
})
class RateLimitRedisModule {}

/** API keys and tenants: who may call the API, on whose behalf, how often. The API role only. */
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      imports: [RateLimitRedisModule],
      inject: [BerthConfig, RATE_LIMIT_REDIS],
      useFactory: (config: BerthConfig, redis: Redis) => ({
        throttlers: [{ name: 'per-key', ttl: 60_000, limit: config.tenancy.rateLimitPerMinute }],
        storage: new ThrottlerStorageRedisService(redis),
      }),
    }),
  ],
  controllers: [TenantsController],
  providers: [
    TenantsRepository,
    ApiKeyResolver,
    // Order matters: the key first, then its rate limit.
    { provide: APP_GUARD, useClass: ApiKeyGuard },
    { provide: APP_GUARD, useClass: KeyThrottlerGuard },
  ],
  exports: [TenantsRepository, ApiKeyResolver],
})
export class TenancyModule {}
