import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { TERMINAL_IMAGE, TEST_DATABASE_URL, TEST_PORT_RANGE, TEST_REDIS_URL } from './berth-harness';
import { TEST_ADMIN_KEY, TEST_SECRET_KEY } from './test-config';

const DIST = join(__dirname, '..', '..', 'dist', 'src');

export interface Running {
  child: ChildProcess;
  output: () => string;
}

/** Runs one of Berth's built entry points (dist/, as in production) against the test services. */
export function run(entry: 'main.js' | 'worker.js' | 'gateway.js', env: Record<string, string>): Running {
  const child = spawn(process.execPath, [join(DIST, entry)], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      BERTH_SECRET_KEY: TEST_SECRET_KEY,
      BERTH_ADMIN_KEY: TEST_ADMIN_KEY,
      // Not the developer's .env (quickstart writes one in the checkout): only what the test sets.
      BERTH_ENV_FILE: '/dev/null',
      TERMINAL_IMAGE,
      SESSION_PORT_RANGE: TEST_PORT_RANGE,
      LOG_FORMAT: 'json',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  return { child, output: () => output };
}
