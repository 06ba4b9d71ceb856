import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';

/**
 * Every entry point reads the same configuration: `.env` in the working
 * directory (or the file BERTH_ENV_FILE names), then the environment, which
 * wins. So `node dist/src/worker.js` started by hand or by a service manager
 * behaves like the processes quickstart starts. A missing default file is
 * fine; a missing BERTH_ENV_FILE is an error.
 */
export function loadEnvFile(env: NodeJS.ProcessEnv = process.env): string | null {
  const named = env.BERTH_ENV_FILE;
  const path = resolve(named || '.env');
  if (!existsSync(path)) {
    if (named) throw new Error(`BERTH_ENV_FILE=${named}: no such file`);
    return null;
  }
  const values = parseEnv(readFileSync(path, 'utf8'));
  for (const [key, value] of Object.entries(values)) {
    if (env[key] === undefined) env[key] = value;
  }
  return path;
}
