import { Module } from '@nestjs/common';
import { KindsModule } from '../kinds/kinds.module';
import { SessionStoreModule } from '../sessions/session-store.module';
import { ActivityRecorder } from './activity-recorder';
import { ApiForwarder } from './api-forwarder';
import { GatewayServer } from './gateway-server';
import { SessionGateway } from './session-gateway';
import { SessionRoutes } from './session-routes';

/** Session traffic: routes, authentication, forwarding, activity. Needs Postgres only. */
@Module({
  imports: [SessionStoreModule, KindsModule],
  providers: [SessionRoutes, ActivityRecorder, SessionGateway],
  exports: [SessionGateway],
})
export class GatewayModule {}

/** The standalone gateway role: its own HTTP server on GATEWAY_PORT, forwarding the rest to the API. */
@Module({
  imports: [GatewayModule],
  providers: [ApiForwarder, GatewayServer],
  exports: [GatewayServer],
})
export class GatewayServerModule {}
