import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The warm pool: containers started ahead of demand, unbound, so a launch
 * the pool can serve is `started` in its own POST.
 *
 * A pool container is a session row from the start (`warming`, then `warm`),
 * with no tenant yet and its `pool_variant` (terminal, browser-headless,
 * browser-headful). Claiming one is a single UPDATE of the oldest `warm` row
 * of the variant (FOR UPDATE SKIP LOCKED): two launches, on any replica,
 * never get the same container. Everything else a session has (host port
 * uniqueness, upstream, ownership labels, orphan reaping, teardown) is the
 * session's, unchanged.
 */
export class WarmPool1795721400000 implements MigrationInterface {
  name = 'WarmPool1795721400000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "sessions" DROP CONSTRAINT "CHK_sessions_status"`);
    await queryRunner.query(`
      ALTER TABLE "sessions" ADD CONSTRAINT "CHK_sessions_status"
      CHECK ("status" IN ('warming', 'warm', 'pending', 'starting', 'started', 'stopping', 'stopped', 'expired', 'failed'))`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "pool_variant" varchar(32)`);
    await queryRunner.query(`ALTER TABLE "sessions" ALTER COLUMN "tenant_id" DROP NOT NULL`);
    // Only a pool container not (yet) claimed has no tenant.
    await queryRunner.query(`ALTER TABLE "sessions" ADD CONSTRAINT "CHK_sessions_tenant" CHECK ("tenant_id" IS NOT NULL OR "pool_variant" IS NOT NULL)`);
    // The claim: the oldest warm container of a variant.
    await queryRunner.query(`CREATE INDEX "IDX_sessions_warm" ON "sessions" ("pool_variant", "created_at") WHERE "status" IN ('warming', 'warm')`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "IDX_sessions_warm"`);
    await queryRunner.query(`DELETE FROM "sessions" WHERE "tenant_id" IS NULL`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP CONSTRAINT "CHK_sessions_tenant"`);
    await queryRunner.query(`ALTER TABLE "sessions" ALTER COLUMN "tenant_id" SET NOT NULL`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "pool_variant"`);
    await queryRunner.query(`UPDATE "sessions" SET "status" = 'stopped' WHERE "status" IN ('warming', 'warm')`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP CONSTRAINT "CHK_sessions_status"`);
    await queryRunner.query(`
      ALTER TABLE "sessions" ADD CONSTRAINT "CHK_sessions_status"
      CHECK ("status" IN ('pending', 'starting', 'started', 'stopping', 'stopped', 'expired', 'failed'))`);
  }
}
