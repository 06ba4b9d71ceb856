import { DynamicModule, Module } from '@nestjs/common';
import { BerthConfig } from '../config/berth-config';
import { ConfigModule } from '../config/config.module';
import { DatabaseModule } from '../database/database.module';
import { GatewayServerModule } from './gateway.module';

/**
 * The standalone gateway process, and nothing else: configuration,
 * Postgres and the gateway. Its entry point (src/gateway.ts) imports this
 * rather than AppModule, so the process never loads the API's, the queues'
 * or the platforms' code (Swagger, BullMQ, the Kubernetes client): a
 * smaller heap means shorter garbage collections on the forwarding path.
 */
@Module({})
export class GatewayAppModule {
  static forRoot(config: BerthConfig): DynamicModule {
    return { module: GatewayAppModule, imports: [ConfigModule.forRoot(config), DatabaseModule, GatewayServerModule] };
  }
}
