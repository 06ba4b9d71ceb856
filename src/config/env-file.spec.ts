import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvFile } from './env-file';

describe('loadEnvFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-env-'));
  const file = join(dir, 'berth.env');
  writeFileSync(file, '# comment\nPORT=4000\nPUBLIC_URL="http://127.0.0.1:4000"\nLOG_LEVEL=debug\n');

  it('fills in what the environment does not set, and the environment wins', () => {
    const env: NodeJS.ProcessEnv = { BERTH_ENV_FILE: file, LOG_LEVEL: 'warn' };
    expect(loadEnvFile(env)).toBe(file);
    expect(env).toMatchObject({ PORT: '4000', PUBLIC_URL: 'http://127.0.0.1:4000', LOG_LEVEL: 'warn' });
  });

  it('refuses a named file that is missing, and ignores a missing default .env', () => {
    expect(() => loadEnvFile({ BERTH_ENV_FILE: join(dir, 'nope.env') })).toThrow(/no such file/);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      expect(loadEnvFile({})).toBeNull();
    } finally {
      process.chdir(cwd);
    }
  });
});
