import { BerthConfig } from './berth-config';
import { loadEnvFile } from './env-file';

/**
 * What every entry point does first: `.env` (see env-file.ts), then the
 * environment, validated into a BerthConfig. A bad value ends the process
 * with a message naming the variable, before anything connects anywhere.
 */
export function loadConfigOrExit(): BerthConfig {
  try {
    loadEnvFile();
    return BerthConfig.fromEnvironment();
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
}
