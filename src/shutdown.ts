import { INestApplicationContext, LoggerService } from '@nestjs/common';

/**
 * SIGTERM/SIGINT: stop taking new work, let in-flight requests and jobs finish
 * (Nest closes the HTTP server and BullMQ workers wait for active jobs), and
 * exit. If that takes longer than the budget, exit anyway: an interrupted
 * provisioning job is re-delivered to another worker, which adopts the container.
 */
export function handleShutdownSignals(app: INestApplicationContext, timeoutMs: number, logger: LoggerService): void {
  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.log({ msg: 'shutting down', signal, timeoutMs });
    const timer = setTimeout(() => {
      logger.error({ msg: 'shutdown timed out; exiting with work in flight', timeoutMs });
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    app
      .close()
      .then(() => {
        logger.log({ msg: 'shutdown complete' });
        process.exit(0);
      })
      .catch((error: Error) => {
        logger.error({ msg: 'error during shutdown', error: error.message });
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
