/**
 * Two tiers (Immich style): `unit` specs sit beside the code and need nothing
 * running; `e2e` specs in test/ run against real Postgres, Redis, a Docker
 * engine and Chromium, started by scripts/test.sh.
 */
// Transpile only (isolatedModules in tsconfig.json): type checking is `npm run typecheck`/nest build's job.
const tsJest = ['ts-jest', {}];

module.exports = {
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      rootDir: '.',
      testMatch: ['<rootDir>/src/**/*.spec.ts'],
      transform: { '^.+\\.ts$': tsJest },
      setupFiles: ['reflect-metadata'],
    },
    {
      displayName: 'e2e',
      testEnvironment: 'node',
      rootDir: '.',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
      transform: { '^.+\\.ts$': tsJest },
      setupFiles: ['reflect-metadata'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      setupFilesAfterEnv: ['<rootDir>/test/support/jest-setup.ts'],
      slowTestThreshold: 30,
    },
  ],
};
