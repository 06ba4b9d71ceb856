import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module';
import { createLogger } from './common/logger';
import { loadConfigOrExit } from './config/load-config';
import { HTTP_APP_OPTIONS, configureHttpApp } from './http-app';
import { handleShutdownSignals } from './shutdown';

/** The API entry point. With RUN_WORKER_IN_API=true it also runs the worker (dev mode). */
async function bootstrap(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, { api: true, worker: config.runWorkerInApi }), {
    ...HTTP_APP_OPTIONS,
    logger,
  });
  configureHttpApp(app, config);
  handleShutdownSignals(app, config.shutdownTimeoutMs, logger);
  await app.listen(config.http.port, config.http.host);
  logger.log({
    msg: 'Berth API listening',
    url: config.http.publicUrl,
    docs: `${config.http.publicUrl}/docs`,
    worker: config.runWorkerInApi,
  });
}

bootstrap().catch((error: Error) => {
  console.error(`Berth API failed to start: ${error.message}`);
  process.exit(1);
});
