import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The gateway: sessions are reached through Berth, never at an address a
 * container reports about itself.
 *
 * - `upstream_url` is where the gateway reaches the session's agent, recorded
 *   by the worker from what the platform assigned; `tunnel_url` (the address
 *   the container reported) goes: public URLs are built from configuration.
 * - `host_port` is the port allocated to a host-networked container. The
 *   partial unique index makes two live allocations of one port impossible;
 *   the port is released (NULL) once the container is gone.
 * - A trigger NOTIFYs `berth_session_changed` with `<id>:<status>` whenever a
 *   session's routing facts change, in the same transaction as the change, so
 *   every gateway replica drops its cached route (and closes the session's
 *   WebSockets) the moment it commits, whichever process made the change.
 */
export class SessionGateway1795698000000 implements MigrationInterface {
  name = 'SessionGateway1795698000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "tunnel_url"`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "upstream_url" varchar(255)`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "host_port" integer`);
    await queryRunner.query(`ALTER TABLE "sessions" RENAME COLUMN "last_active_at" TO "last_activity_at"`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_sessions_host_port" ON "sessions" ("host_port") WHERE "host_port" IS NOT NULL`);
    await queryRunner.query(`
      CREATE FUNCTION berth_notify_session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' THEN
          PERFORM pg_notify('berth_session_changed', OLD.id::text || ':deleted');
          RETURN OLD;
        END IF;
        PERFORM pg_notify('berth_session_changed', NEW.id::text || ':' || NEW.status);
        RETURN NEW;
      END $$`);
    await queryRunner.query(`
      CREATE TRIGGER "TRG_sessions_changed_update" AFTER UPDATE ON "sessions" FOR EACH ROW
      WHEN (OLD.status IS DISTINCT FROM NEW.status
         OR OLD.upstream_url IS DISTINCT FROM NEW.upstream_url
         OR OLD.access_token_hash IS DISTINCT FROM NEW.access_token_hash)
      EXECUTE FUNCTION berth_notify_session_changed()`);
    await queryRunner.query(`
      CREATE TRIGGER "TRG_sessions_changed_delete" AFTER DELETE ON "sessions" FOR EACH ROW
      EXECUTE FUNCTION berth_notify_session_changed()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TRIGGER "TRG_sessions_changed_delete" ON "sessions"`);
    await queryRunner.query(`DROP TRIGGER "TRG_sessions_changed_update" ON "sessions"`);
    await queryRunner.query(`DROP FUNCTION berth_notify_session_changed()`);
    await queryRunner.query(`DROP INDEX "UQ_sessions_host_port"`);
    await queryRunner.query(`ALTER TABLE "sessions" RENAME COLUMN "last_activity_at" TO "last_active_at"`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "host_port"`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "upstream_url"`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "tunnel_url" varchar(2048)`);
  }
}
