import { BerthConfig } from '../../src/config/berth-config';

/** The one variable without a default; every test configuration needs a value. */
export const TEST_SECRET_KEY = 'test-secret-key-0123456789abcdef0123456789abcdef';

/** The admin key test instances run with (also the default tenant's key). */
export const TEST_ADMIN_KEY = 'test-admin-key-fedcba9876543210fedcba9876543210';

/** A validated configuration for unit tests: the defaults, the test secret key and `env`. */
export function testConfig(env: Record<string, string> = {}): BerthConfig {
  return BerthConfig.fromEnvironment({ BERTH_SECRET_KEY: TEST_SECRET_KEY, ...env });
}
