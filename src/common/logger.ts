import { ConsoleLogger, LogLevel } from '@nestjs/common';
import { BerthConfig } from '../config/berth-config';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/**
 * Structured logs: one JSON object per line in production (LOG_FORMAT=json).
 * Call sites pass objects such as `{ msg, sessionId }` so every line about a
 * session can be found by its id.
 */
export function createLogger(config: BerthConfig, context?: string): ConsoleLogger {
  const levels = LEVELS.slice(0, LEVELS.indexOf(config.log.level) + 1);
  return new ConsoleLogger(context ?? 'Berth', {
    json: config.log.format === 'json',
    colors: config.log.format === 'pretty' && process.stdout.isTTY,
    logLevels: levels,
  });
}
