import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Browser sessions on the same lifecycle as terminals.
 *
 * - `kind` may be 'browser'; `options` holds what a kind was launched with
 *   (browser: start_url, headless, viewport, view_only); `profile` and
 *   `volume` name the persistent storage a session mounts.
 * - One live session per profile, enforced by a partial unique index: a
 *   second launch with the same profile finds the live one instead.
 * - Access tokens move to their own table: a session may be handed out
 *   again (same profile, later an idempotent launch), each time with a fresh
 *   token, every one stored only as its SHA-256.
 * - `browser_profiles`: each profile's volume. The volume name carries a
 *   random suffix, so a profile deleted and created again never sees the old
 *   data while the old volume is still being removed.
 */
export class BrowserSessions1795702000000 implements MigrationInterface {
  name = 'BrowserSessions1795702000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "sessions" DROP CONSTRAINT "CHK_sessions_kind"`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD CONSTRAINT "CHK_sessions_kind" CHECK ("kind" IN ('terminal', 'browser'))`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "options" jsonb NOT NULL DEFAULT '{}'::jsonb`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "profile" varchar(64)`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "volume" varchar(255)`);
    await queryRunner.query(`
      CREATE UNIQUE INDEX "UQ_sessions_live_profile" ON "sessions" ("profile")
      WHERE "profile" IS NOT NULL AND "status" IN ('pending', 'starting', 'started')`);

    await queryRunner.query(`
      CREATE TABLE "session_access_tokens" (
        "token_hash" char(64)    NOT NULL,
        "session_id" uuid        NOT NULL,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "PK_session_access_tokens" PRIMARY KEY ("token_hash"),
        CONSTRAINT "FK_session_access_tokens_session" FOREIGN KEY ("session_id") REFERENCES "sessions" ("id") ON DELETE CASCADE
      )`);
    await queryRunner.query(`CREATE INDEX "IDX_session_access_tokens_session" ON "session_access_tokens" ("session_id", "created_at")`);
    await queryRunner.query(`INSERT INTO "session_access_tokens" ("token_hash", "session_id", "created_at") SELECT "access_token_hash", "id", "created_at" FROM "sessions"`);
    // The routing trigger watched the old column: rebuild it without.
    await queryRunner.query(`DROP TRIGGER "TRG_sessions_changed_update" ON "sessions"`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "access_token_hash"`);
    await queryRunner.query(`
      CREATE TRIGGER "TRG_sessions_changed_update" AFTER UPDATE ON "sessions" FOR EACH ROW
      WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.upstream_url IS DISTINCT FROM NEW.upstream_url)
      EXECUTE FUNCTION berth_notify_session_changed()`);
    // A new or removed token changes who may pass the gateway: same channel, `<id>:tokens`.
    await queryRunner.query(`
      CREATE FUNCTION berth_notify_session_tokens_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('berth_session_changed', COALESCE(NEW.session_id, OLD.session_id)::text || ':tokens');
        RETURN NULL;
      END $$`);
    await queryRunner.query(`
      CREATE TRIGGER "TRG_session_access_tokens_changed" AFTER INSERT OR DELETE ON "session_access_tokens" FOR EACH ROW
      EXECUTE FUNCTION berth_notify_session_tokens_changed()`);

    await queryRunner.query(`
      CREATE TABLE "browser_profiles" (
        "name"         varchar(64)  NOT NULL,
        "volume"       varchar(255) NOT NULL,
        "created_at"   timestamptz  NOT NULL DEFAULT now(),
        "last_used_at" timestamptz  NOT NULL DEFAULT now(),
        CONSTRAINT "PK_browser_profiles" PRIMARY KEY ("name"),
        CONSTRAINT "UQ_browser_profiles_volume" UNIQUE ("volume")
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "browser_profiles"`);
    await queryRunner.query(`DROP TRIGGER "TRG_session_access_tokens_changed" ON "session_access_tokens"`);
    await queryRunner.query(`DROP FUNCTION berth_notify_session_tokens_changed()`);
    await queryRunner.query(`DROP TRIGGER "TRG_sessions_changed_update" ON "sessions"`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "access_token_hash" char(64)`);
    await queryRunner.query(`
      UPDATE "sessions" s SET "access_token_hash" = t."token_hash"
      FROM (SELECT DISTINCT ON ("session_id") "session_id", "token_hash" FROM "session_access_tokens" ORDER BY "session_id", "created_at") t
      WHERE t."session_id" = s."id"`);
    await queryRunner.query(`DELETE FROM "sessions" WHERE "access_token_hash" IS NULL`);
    await queryRunner.query(`ALTER TABLE "sessions" ALTER COLUMN "access_token_hash" SET NOT NULL`);
    await queryRunner.query(`
      CREATE TRIGGER "TRG_sessions_changed_update" AFTER UPDATE ON "sessions" FOR EACH ROW
      WHEN (OLD.status IS DISTINCT FROM NEW.status
         OR OLD.upstream_url IS DISTINCT FROM NEW.upstream_url
         OR OLD.access_token_hash IS DISTINCT FROM NEW.access_token_hash)
      EXECUTE FUNCTION berth_notify_session_changed()`);
    await queryRunner.query(`DROP TABLE "session_access_tokens"`);
    await queryRunner.query(`DROP INDEX "UQ_sessions_live_profile"`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "volume"`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "profile"`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "options"`);
    await queryRunner.query(`DELETE FROM "sessions" WHERE "kind" <> 'terminal'`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP CONSTRAINT "CHK_sessions_kind"`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD CONSTRAINT "CHK_sessions_kind" CHECK ("kind" IN ('terminal'))`);
  }
}
