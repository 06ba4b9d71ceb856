import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
import { BrowsersModule } from './browsers/browsers.module';
import { CallbacksModule } from './callbacks/callbacks.module';
import { BerthConfig } from './config/berth-config';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { GatewayModule, GatewayServerModule } from './gateway/gateway.module';
import { HealthModule } from './health/health.module';
import { PoolApiModule } from './pool/pool.module';
import { ProvisioningWorkerModule } from './provisioning/provisioning-worker.module';
import { SessionsApiModule } from './sessions/sessions.module';
import { TenancyModule } from './tenancy/tenancy.module';
import { TerminalsModule } from './terminals/terminals.module';
import { VolumesApiModule } from './volumes/volumes.module';
import { WebhooksApiModule, WebhooksWorkerModule } from './webhooks/webhooks.module';

export interface Roles {
  /** Serve the HTTP API (and session traffic on the same port when RUN_GATEWAY_IN_API). */
  api: boolean;
  /** Run the BullMQ processors and the cleanup schedule. */
  worker: boolean;
  /**
   * Run the gateway on its own (GATEWAY_PORT), forwarding API traffic to the
   * API processes. (The gateway's own entry point uses the leaner
   * GatewayAppModule; this is for running roles together, as tests do.)
   */
  gateway?: boolean;
}

/** One codebase, three roles: each entry point loads only the modules its role needs. */
@Module({})
export class AppModule {
  static forRoot(config: BerthConfig, roles: Roles): DynamicModule {
    const imports: DynamicModule['imports'] = [ConfigModule.forRoot(config), DatabaseModule];
    if (roles.api || roles.worker) {
      imports.push(
        BullModule.forRoot({
          prefix: config.redis.queuePrefix,
          connection: {
            url: config.redis.url,
            // Required by BullMQ workers: blocking commands must not be retried by ioredis.
            maxRetriesPerRequest: null,
          },
        }),
      );
    }
    if (roles.api) {
      imports.push(TenancyModule, SessionsApiModule, TerminalsModule, BrowsersModule, VolumesApiModule, WebhooksApiModule, PoolApiModule, CallbacksModule, HealthModule);
    }
    if (roles.api && config.gateway.embedded) imports.push(GatewayModule);
    if (roles.worker) imports.push(ProvisioningWorkerModule, WebhooksWorkerModule);
    if (roles.gateway) imports.push(GatewayServerModule);
    return { module: AppModule, imports };
  }
}
