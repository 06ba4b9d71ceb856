import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { createLogger } from './common/logger';
import { loadConfigOrExit } from './config/load-config';
import { handleShutdownSignals } from './shutdown';

/** The worker entry point: BullMQ processors and the cleanup schedule, no HTTP. */
async function bootstrap(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);
  const app = await NestFactory.createApplicationContext(AppModule.forRoot(config, { api: false, worker: true }), { logger });
  handleShutdownSignals(app, config.shutdownTimeoutMs, logger);
  await app.init();
  logger.log({ msg: 'Berth worker running', platform: config.platform.kind, concurrency: config.provisioning.concurrency });
}

bootstrap().catch((error: Error) => {
  console.error(`Berth worker failed to start: ${error.message}`);
  process.exit(1);
});
