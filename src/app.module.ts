import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
import { CallbacksModule } from './callbacks/callbacks.module';
import { BerthConfig } from './config/berth-config';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { HealthModule } from './health/health.module';
import { ProvisioningWorkerModule } from './provisioning/provisioning-worker.module';
import { SessionsApiModule } from './sessions/sessions.module';

export interface Roles {
  /** Serve the HTTP API. */
  api: boolean;
  /** Run the BullMQ processors and the cleanup schedule. */
  worker: boolean;
}

/** One codebase, two roles: the entry points pick which modules to load. */
@Module({})
export class AppModule {
  static forRoot(config: BerthConfig, roles: Roles): DynamicModule {
    const imports = [
      ConfigModule.forRoot(config),
      DatabaseModule,
      BullModule.forRoot({
        prefix: config.redis.queuePrefix,
        connection: {
          url: config.redis.url,
          // Required by BullMQ workers: blocking commands must not be retried by ioredis.
          maxRetriesPerRequest: null,
        },
      }),
    ];
    if (roles.api) imports.push(SessionsApiModule, CallbacksModule, HealthModule);
    if (roles.worker) imports.push(ProvisioningWorkerModule);
    return { module: AppModule, imports };
  }
}
