import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';

/** Arbitrary constant: every Berth process agrees on it, nothing else uses it. */
const MIGRATION_LOCK_KEY = 0x62657274; // "bert"

/**
 * Runs pending migrations while holding a Postgres advisory lock, so API and
 * worker replicas starting together migrate exactly once and the others wait.
 */
export async function runMigrationsLocked(dataSource: DataSource, logger = new Logger('Migrations')): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      const applied = await dataSource.runMigrations({ transaction: 'each' });
      const names = applied.map((migration) => migration.name);
      if (names.length > 0) logger.log({ msg: 'migrations applied', migrations: names });
      return names;
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await runner.release();
  }
}
