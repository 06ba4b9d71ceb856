import { MigrationInterface, QueryRunner } from 'typeorm';

export class CreateSessions1795000000000 implements MigrationInterface {
  name = 'CreateSessions1795000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "sessions" (
        "id"                  uuid          NOT NULL DEFAULT gen_random_uuid(),
        "kind"                varchar(16)   NOT NULL,
        "status"              varchar(16)   NOT NULL DEFAULT 'pending',
        "image"               varchar(512)  NOT NULL,
        "platform"            varchar(32)   NOT NULL,
        "platform_state"      jsonb         NOT NULL DEFAULT '{}'::jsonb,
        "tunnel_url"          varchar(2048),
        "container_id"        varchar(255),
        "container_name"      varchar(255),
        "error_message"       varchar(1024),
        "callback_token_hash" char(64)      NOT NULL,
        "access_token_hash"   char(64)      NOT NULL,
        "created_at"          timestamptz   NOT NULL DEFAULT now(),
        "updated_at"          timestamptz   NOT NULL DEFAULT now(),
        "started_at"          timestamptz,
        "last_active_at"      timestamptz,
        "expires_at"          timestamptz   NOT NULL,
        "deleted_at"          timestamptz,
        CONSTRAINT "PK_sessions" PRIMARY KEY ("id"),
        CONSTRAINT "CHK_sessions_status"
          CHECK ("status" IN ('pending', 'starting', 'started', 'stopped', 'expired', 'failed')),
        CONSTRAINT "CHK_sessions_kind" CHECK ("kind" IN ('terminal'))
      )`);
    // Cleanup: live sessions past their TTL.
    await queryRunner.query(`
      CREATE INDEX "IDX_sessions_live_expires_at" ON "sessions" ("expires_at")
      WHERE "status" IN ('pending', 'starting', 'started')`);
    // Cleanup: sessions stuck before `started` past the start timeout.
    await queryRunner.query(`
      CREATE INDEX "IDX_sessions_starting_created_at" ON "sessions" ("created_at")
      WHERE "status" IN ('pending', 'starting')`);
    // Listing, newest first, optionally filtered by status.
    await queryRunner.query(`CREATE INDEX "IDX_sessions_status_created_at" ON "sessions" ("status", "created_at" DESC, "id")`);
    await queryRunner.query(`CREATE INDEX "IDX_sessions_created_at" ON "sessions" ("created_at" DESC, "id")`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "sessions"`);
  }
}
