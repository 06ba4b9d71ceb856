import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes for the two cleanup-sweep queries that read the sessions table by
 * status alone. Without them both were sequential scans of every row ever
 * written (10,500 rows: ~1.2 ms each, growing with history rather than with
 * what is live; bench/bookkeeping.ts). Both are partial, so they hold only
 * live rows and stay small however long the history grows:
 * - the sessions that should have a running container (SessionsRepository.findRunning),
 *   checked against the platform's one listing;
 * - which of the listed containers' sessions still hold a container (holdingIds),
 *   looked up by id among the live rows only, for orphan reaping.
 */
export class SweepIndexes1795731000000 implements MigrationInterface {
  name = 'SweepIndexes1795731000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE INDEX "IDX_sessions_running" ON "sessions" ("status") WHERE "status" IN ('started', 'warm')`);
    await queryRunner.query(
      `CREATE INDEX "IDX_sessions_holding_id" ON "sessions" ("id") WHERE "status" IN ('warming', 'warm', 'pending', 'starting', 'started', 'stopping')`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "IDX_sessions_holding_id"`);
    await queryRunner.query(`DROP INDEX "IDX_sessions_running"`);
  }
}
