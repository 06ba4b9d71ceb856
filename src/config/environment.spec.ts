import { TEST_SECRET_KEY, testConfig } from '../../test/support/test-config';
import { BerthConfig } from './berth-config';
import { ConfigValidationError, OPTIONAL_VARIABLES, parseEnvironment } from './environment';

describe('configuration', () => {
  it('applies the documented defaults', () => {
    const config = testConfig({});
    expect(config.platform.kind).toBe('docker');
    expect(config.terminal.ttlSeconds).toBe(24 * 3600);
    expect(config.browser.ttlSeconds).toBe(8 * 3600);
    expect(config.gateway).toMatchObject({ embedded: true, sessionUrlTemplate: 'http://{id}.localhost:3000', apiUpstream: 'http://127.0.0.1:3000' });
    expect(config.sessions.cleanupIntervalMs).toBe(5 * 60_000);
    expect(config.callbackUrl).toBe('http://127.0.0.1:3000/api/v1/callbacks');
    expect(config.runWorkerInApi).toBe(false);
  });

  it('converts numbers and booleans, including "false"', () => {
    const env = parseEnvironment({ BERTH_SECRET_KEY: TEST_SECRET_KEY, PORT: '8080', RUN_WORKER_IN_API: 'false', K8S_IN_CLUSTER: 'true', CLEANUP_INTERVAL_MINUTES: '0.5' });
    expect(env.PORT).toBe(8080);
    expect(env.RUN_WORKER_IN_API).toBe(false);
    expect(env.K8S_IN_CLUSTER).toBe(true);
    expect(env.CLEANUP_INTERVAL_MINUTES).toBe(0.5);
  });

  it('derives the callback URL from PUBLIC_URL unless CALLBACK_URL is set', () => {
    expect(testConfig({ PUBLIC_URL: 'https://berth.example.com/' }).callbackUrl).toBe(
      'https://berth.example.com/api/v1/callbacks',
    );
    expect(testConfig({ CALLBACK_URL: 'http://api:3000/api/v1/callbacks' }).callbackUrl).toBe(
      'http://api:3000/api/v1/callbacks',
    );
  });

  it('refuses bad values with a message naming each variable', () => {
    let error: Error | undefined;
    try {
      parseEnvironment({ PORT: 'http', CONTAINER_PLATFORM: 'nomad', RUN_WORKER_IN_API: 'maybe', DATABASE_URL: 'mysql://x' });
    } catch (caught) {
      error = caught as Error;
    }
    expect(error).toBeInstanceOf(ConfigValidationError);
    expect(error!.message).toMatch(/PORT="http"/);
    expect(error!.message).toMatch(/CONTAINER_PLATFORM="nomad": CONTAINER_PLATFORM must be one of the following values: docker, kubernetes/);
    expect(error!.message).toMatch(/RUN_WORKER_IN_API="maybe"/);
    expect(error!.message).toMatch(/DATABASE_URL must be a postgres:\/\/ URL/);
  });

  it('computes container limits per kind', () => {
    const config = testConfig({ TERMINAL_MEMORY_MB: '512', TERMINAL_CPUS: '1.5', TERMINAL_PIDS_LIMIT: '100', BROWSER_MEMORY_MB: '2048' });
    expect(config.terminal.resources).toMatchObject({ memoryBytes: 512 * 1024 * 1024, nanoCpus: 1_500_000_000, pidsLimit: 100 });
    expect(config.browser.resources).toMatchObject({ memoryBytes: 2048 * 1024 * 1024, nanoCpus: 1e9, pidsLimit: 1024 });
  });

  it('reads the start_url allow-list and the host port range', () => {
    const config = testConfig({ START_URL_ALLOW: ' 127.0.0.1, intranet.example ,,', SESSION_PORT_RANGE: '21000-21999' });
    expect(config.browser.startUrlAllow).toEqual(['127.0.0.1', 'intranet.example']);
    expect(config.platform.docker.portRange).toEqual({ min: 21000, max: 21999 });
    expect(() => testConfig({ SESSION_PORT_RANGE: '3000-2000' })).toThrow(/SESSION_PORT_RANGE/);
  });
});

describe('.env.example', () => {
  it('lists every variable with its default', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { readFileSync } = require('node:fs') as typeof import('node:fs');
    const example = readFileSync(`${__dirname}/../../.env.example`, 'utf8');
    const listed = new Map<string, string>();
    for (const match of example.matchAll(/^#?\s?([A-Z][A-Z0-9_]+)=(.*)$/gm)) listed.set(match[1], match[2]);
    const defaults = parseEnvironment({ BERTH_SECRET_KEY: TEST_SECRET_KEY });
    for (const [name, value] of Object.entries(defaults).filter(([name, value]) => value !== undefined && name !== 'BERTH_SECRET_KEY')) {
      expect({ name, value: listed.get(name) }).toEqual({ name, value: String(value) });
    }
    // Variables without a default are listed, commented out.
    for (const name of OPTIONAL_VARIABLES) expect({ name, listed: listed.get(name) }).toEqual({ name, listed: '' });
    // Nothing documented that the code does not read.
    const known = new Set([...Object.keys(defaults), ...OPTIONAL_VARIABLES]);
    expect([...listed.keys()].filter((name) => !known.has(name))).toEqual([]);
  });
});
