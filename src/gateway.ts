import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { createLogger } from './common/logger';
import { loadConfigOrExit } from './config/load-config';
import { GatewayAppModule } from './gateway/gateway-app.module';
import { handleShutdownSignals } from './shutdown';

/**
 * The gateway entry point: all session traffic on GATEWAY_PORT (the port in
 * PUBLIC_URL), everything else forwarded to the API at GATEWAY_API_UPSTREAM.
 * Needs Postgres only.
 */
async function bootstrap(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);
  const app = await NestFactory.createApplicationContext(GatewayAppModule.forRoot(config), { logger });
  handleShutdownSignals(app, config.shutdownTimeoutMs, logger);
  await app.init();
}

bootstrap().catch((error: Error) => {
  console.error(`Berth gateway failed to start: ${error.message}`);
  process.exit(1);
});
