import { MigrationInterface, QueryRunner } from 'typeorm';

/** The tenant every existing session joins, and the admin key's own tenant. */
export const DEFAULT_TENANT_ID = '00000000-0000-4000-8000-000000000000';

const LIVE = `('pending', 'starting', 'started')`;
/** A session still owns its container (and its volume) until it is `stopped`. */
const HOLDING = `('pending', 'starting', 'started', 'stopping')`;

/**
 * Tenants, API keys, owners, idle timeouts, an honest stop, quotas, events.
 *
 * - tenants / api_keys: every /api/v1 route needs a key (SHA-256 stored);
 *   a trigger NOTIFYs `berth_api_keys_changed` so every replica drops a
 *   revoked key within a second.
 * - sessions gain tenant, owner, workspace, per-session idle timeout and
 *   the source of their last activity, and `stopping`: a session whose
 *   container is being removed (its end status and reason wait in
 *   stop_status / end_reason until the container is gone).
 * - reuse_key: launches asking to reuse a live session of the same tenant,
 *   owner, kind and workspace carry it; a partial unique index makes ten
 *   concurrent such launches create exactly one session.
 * - volumes: browser profiles and terminal workspaces, one table, owned by
 *   tenant and owner; one session at a time may hold a volume, until its
 *   container is gone (stopping included: a browser saves its profile then).
 * - idempotency_keys: an Idempotency-Key replay returns the same session.
 * - session_events: the audit trail and the source of live events (SSE,
 *   webhooks); a trigger NOTIFYs `berth_session_events` on every insert.
 * - webhooks: per-tenant endpoints for those events.
 */
export class TenantsAndLifecycle1795710000000 implements MigrationInterface {
  name = 'TenantsAndLifecycle1795710000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE "tenants" (
        "id"                     uuid        NOT NULL DEFAULT gen_random_uuid(),
        "name"                   varchar(64) NOT NULL,
        "max_sessions"           integer,
        "max_sessions_per_owner" integer,
        "created_at"             timestamptz NOT NULL DEFAULT now(),
        "disabled_at"            timestamptz,
        CONSTRAINT "PK_tenants" PRIMARY KEY ("id"),
        CONSTRAINT "UQ_tenants_name" UNIQUE ("name")
      )`);
    await queryRunner.query(`INSERT INTO "tenants" ("id", "name") VALUES ('${DEFAULT_TENANT_ID}', 'default')`);
    await queryRunner.query(`
      CREATE TABLE "api_keys" (
        "id"           uuid        NOT NULL DEFAULT gen_random_uuid(),
        "tenant_id"    uuid        NOT NULL,
        "name"         varchar(64) NOT NULL,
        "key_hash"     char(64)    NOT NULL,
        "prefix"       varchar(16) NOT NULL,
        "created_at"   timestamptz NOT NULL DEFAULT now(),
        "revoked_at"   timestamptz,
        CONSTRAINT "PK_api_keys" PRIMARY KEY ("id"),
        CONSTRAINT "UQ_api_keys_key_hash" UNIQUE ("key_hash"),
        CONSTRAINT "FK_api_keys_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON DELETE CASCADE
      )`);
    await queryRunner.query(`CREATE INDEX "IDX_api_keys_tenant" ON "api_keys" ("tenant_id", "created_at")`);
    await queryRunner.query(`
      CREATE FUNCTION berth_notify_api_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_TABLE_NAME = 'tenants' THEN
          PERFORM pg_notify('berth_api_keys_changed', 'tenant:' || NEW.id::text);
        ELSE
          PERFORM pg_notify('berth_api_keys_changed', 'key:' || COALESCE(NEW.key_hash, OLD.key_hash));
        END IF;
        RETURN NULL;
      END $$`);
    await queryRunner.query(`
      CREATE TRIGGER "TRG_api_keys_changed" AFTER INSERT OR UPDATE OR DELETE ON "api_keys" FOR EACH ROW
      EXECUTE FUNCTION berth_notify_api_keys_changed()`);
    await queryRunner.query(`
      CREATE TRIGGER "TRG_tenants_changed" AFTER UPDATE ON "tenants" FOR EACH ROW
      EXECUTE FUNCTION berth_notify_api_keys_changed()`);

    // Sessions: tenant, owner, workspace, idle timeout, an honest stop.
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "tenant_id" uuid NOT NULL DEFAULT '${DEFAULT_TENANT_ID}'`);
    await queryRunner.query(`ALTER TABLE "sessions" ALTER COLUMN "tenant_id" DROP DEFAULT`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD CONSTRAINT "FK_sessions_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id")`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "owner" varchar(255)`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "workspace" varchar(128)`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "reuse_key" char(64)`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "idle_timeout_seconds" integer`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "last_activity_source" varchar(16)`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "stop_status" varchar(16)`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "end_reason" varchar(32)`);
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "removal_error" varchar(1024)`);
    // Callback secrets are derived from BERTH_SECRET_KEY now (no plaintext in job payloads, none stored).
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "callback_token_hash"`);
    // When capacity let it start: the start timeout counts from here, not from the wait in line.
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "admitted_at" timestamptz`);
    await queryRunner.query(`UPDATE "sessions" SET "admitted_at" = "created_at" WHERE "status" <> 'pending'`);
    await queryRunner.query(`CREATE INDEX "IDX_sessions_starting_admitted_at" ON "sessions" ("admitted_at") WHERE "status" = 'starting'`);
    await queryRunner.query(`UPDATE "sessions" SET "end_reason" = CASE "status" WHEN 'expired' THEN 'ttl' WHEN 'failed' THEN 'failed' WHEN 'stopped' THEN 'deleted' END`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP CONSTRAINT "CHK_sessions_status"`);
    await queryRunner.query(`
      ALTER TABLE "sessions" ADD CONSTRAINT "CHK_sessions_status"
      CHECK ("status" IN ('pending', 'starting', 'started', 'stopping', 'stopped', 'expired', 'failed'))`);
    // Tenant-scoped listing and the owner's live sessions.
    await queryRunner.query(`DROP INDEX "IDX_sessions_status_created_at"`);
    await queryRunner.query(`DROP INDEX "IDX_sessions_created_at"`);
    await queryRunner.query(`CREATE INDEX "IDX_sessions_tenant_created_at" ON "sessions" ("tenant_id", "created_at" DESC, "id")`);
    await queryRunner.query(`CREATE INDEX "IDX_sessions_tenant_status_created_at" ON "sessions" ("tenant_id", "status", "created_at" DESC, "id")`);
    await queryRunner.query(`CREATE INDEX "IDX_sessions_live_owner" ON "sessions" ("tenant_id", "owner") WHERE "status" IN ${HOLDING}`);
    await queryRunner.query(`CREATE INDEX "IDX_sessions_stopping" ON "sessions" ("updated_at") WHERE "status" = 'stopping'`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_sessions_live_reuse_key" ON "sessions" ("reuse_key") WHERE "reuse_key" IS NOT NULL AND "status" IN ${LIVE}`);

    // Profiles and workspaces: one table, owned by tenant and owner.
    await queryRunner.query(`
      CREATE TABLE "volumes" (
        "id"           uuid         NOT NULL DEFAULT gen_random_uuid(),
        "tenant_id"    uuid         NOT NULL,
        "kind"         varchar(16)  NOT NULL,
        "owner"        varchar(255) NOT NULL DEFAULT '',
        "name"         varchar(128) NOT NULL,
        "volume"       varchar(255) NOT NULL,
        "created_at"   timestamptz  NOT NULL DEFAULT now(),
        "last_used_at" timestamptz  NOT NULL DEFAULT now(),
        CONSTRAINT "PK_volumes" PRIMARY KEY ("id"),
        CONSTRAINT "UQ_volumes_volume" UNIQUE ("volume"),
        CONSTRAINT "UQ_volumes_owner_name" UNIQUE ("tenant_id", "kind", "owner", "name"),
        CONSTRAINT "FK_volumes_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON DELETE CASCADE,
        CONSTRAINT "CHK_volumes_kind" CHECK ("kind" IN ('browser', 'terminal'))
      )`);
    await queryRunner.query(`
      INSERT INTO "volumes" ("tenant_id", "kind", "name", "volume", "created_at", "last_used_at")
      SELECT '${DEFAULT_TENANT_ID}', 'browser', "name", "volume", "created_at", "last_used_at" FROM "browser_profiles"`);
    await queryRunner.query(`DROP TABLE "browser_profiles"`);
    await queryRunner.query(`DROP INDEX "UQ_sessions_live_profile"`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_sessions_holding_volume" ON "sessions" ("volume") WHERE "volume" IS NOT NULL AND "status" IN ${HOLDING}`);

    await queryRunner.query(`
      CREATE TABLE "idempotency_keys" (
        "tenant_id"    uuid         NOT NULL,
        "key"          varchar(255) NOT NULL,
        "session_id"   uuid         NOT NULL,
        "request_hash" char(64)     NOT NULL,
        "created_at"   timestamptz  NOT NULL DEFAULT now(),
        CONSTRAINT "PK_idempotency_keys" PRIMARY KEY ("tenant_id", "key"),
        CONSTRAINT "FK_idempotency_keys_session" FOREIGN KEY ("session_id") REFERENCES "sessions" ("id") ON DELETE CASCADE
      )`);
    await queryRunner.query(`CREATE INDEX "IDX_idempotency_keys_created_at" ON "idempotency_keys" ("created_at")`);

    await queryRunner.query(`
      CREATE TABLE "session_events" (
        "id"         bigserial    NOT NULL,
        "session_id" uuid         NOT NULL,
        "tenant_id"  uuid         NOT NULL,
        "type"       varchar(32)  NOT NULL,
        "actor"      varchar(128) NOT NULL,
        "data"       jsonb        NOT NULL DEFAULT '{}'::jsonb,
        "created_at" timestamptz  NOT NULL DEFAULT now(),
        CONSTRAINT "PK_session_events" PRIMARY KEY ("id"),
        CONSTRAINT "FK_session_events_session" FOREIGN KEY ("session_id") REFERENCES "sessions" ("id") ON DELETE CASCADE
      )`);
    await queryRunner.query(`CREATE INDEX "IDX_session_events_session" ON "session_events" ("session_id", "id")`);
    await queryRunner.query(`
      CREATE FUNCTION berth_notify_session_event() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('berth_session_events', NEW.session_id::text || ':' || NEW.id::text);
        RETURN NULL;
      END $$`);
    await queryRunner.query(`
      CREATE TRIGGER "TRG_session_events_inserted" AFTER INSERT ON "session_events" FOR EACH ROW
      EXECUTE FUNCTION berth_notify_session_event()`);

    await queryRunner.query(`
      CREATE TABLE "webhooks" (
        "id"          uuid          NOT NULL DEFAULT gen_random_uuid(),
        "tenant_id"   uuid          NOT NULL,
        "url"         varchar(2048) NOT NULL,
        "events"      varchar(32)[],
        "created_at"  timestamptz   NOT NULL DEFAULT now(),
        CONSTRAINT "PK_webhooks" PRIMARY KEY ("id"),
        CONSTRAINT "FK_webhooks_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON DELETE CASCADE
      )`);
    await queryRunner.query(`CREATE INDEX "IDX_webhooks_tenant" ON "webhooks" ("tenant_id")`);
    // How far the webhook dispatcher has read session_events; it starts at
    // what exists now (history is not replayed to endpoints registered later).
    await queryRunner.query(`CREATE TABLE "dispatch_cursors" ("name" varchar(32) NOT NULL, "position" bigint NOT NULL, CONSTRAINT "PK_dispatch_cursors" PRIMARY KEY ("name"))`);
    await queryRunner.query(`INSERT INTO "dispatch_cursors" ("name", "position") SELECT 'webhooks', COALESCE(max("id"), 0) FROM "session_events"`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "dispatch_cursors"`);
    await queryRunner.query(`DROP TABLE "webhooks"`);
    await queryRunner.query(`DROP TABLE "session_events"`);
    await queryRunner.query(`DROP FUNCTION berth_notify_session_event()`);
    await queryRunner.query(`DROP TABLE "idempotency_keys"`);
    await queryRunner.query(`DROP INDEX "UQ_sessions_holding_volume"`);
    await queryRunner.query(`
      CREATE TABLE "browser_profiles" (
        "name" varchar(64) NOT NULL, "volume" varchar(255) NOT NULL,
        "created_at" timestamptz NOT NULL DEFAULT now(), "last_used_at" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "PK_browser_profiles" PRIMARY KEY ("name"), CONSTRAINT "UQ_browser_profiles_volume" UNIQUE ("volume"))`);
    await queryRunner.query(`
      INSERT INTO "browser_profiles" ("name", "volume", "created_at", "last_used_at")
      SELECT DISTINCT ON ("name") left("name", 64), "volume", "created_at", "last_used_at" FROM "volumes" WHERE "kind" = 'browser' ORDER BY "name", "created_at"`);
    await queryRunner.query(`DROP TABLE "volumes"`);
    await queryRunner.query(`UPDATE "sessions" SET "status" = 'stopped' WHERE "status" = 'stopping'`);
    await queryRunner.query(`
      CREATE UNIQUE INDEX "UQ_sessions_live_profile" ON "sessions" ("profile")
      WHERE "profile" IS NOT NULL AND "status" IN ('pending', 'starting', 'started')`);
    await queryRunner.query(`DROP INDEX "UQ_sessions_live_reuse_key"`);
    await queryRunner.query(`DROP INDEX "IDX_sessions_starting_admitted_at"`);
    await queryRunner.query(`DROP INDEX "IDX_sessions_stopping"`);
    await queryRunner.query(`DROP INDEX "IDX_sessions_live_owner"`);
    await queryRunner.query(`DROP INDEX "IDX_sessions_tenant_status_created_at"`);
    await queryRunner.query(`DROP INDEX "IDX_sessions_tenant_created_at"`);
    await queryRunner.query(`CREATE INDEX "IDX_sessions_status_created_at" ON "sessions" ("status", "created_at" DESC, "id")`);
    await queryRunner.query(`CREATE INDEX "IDX_sessions_created_at" ON "sessions" ("created_at" DESC, "id")`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP CONSTRAINT "CHK_sessions_status"`);
    await queryRunner.query(`
      ALTER TABLE "sessions" ADD CONSTRAINT "CHK_sessions_status"
      CHECK ("status" IN ('pending', 'starting', 'started', 'stopped', 'expired', 'failed'))`);
    for (const column of ['admitted_at', 'removal_error', 'end_reason', 'stop_status', 'last_activity_source', 'idle_timeout_seconds', 'reuse_key', 'workspace', 'owner']) {
      await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "${column}"`);
    }
    await queryRunner.query(`ALTER TABLE "sessions" ADD COLUMN "callback_token_hash" char(64) NOT NULL DEFAULT repeat('0', 64)`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP CONSTRAINT "FK_sessions_tenant"`);
    await queryRunner.query(`ALTER TABLE "sessions" DROP COLUMN "tenant_id"`);
    await queryRunner.query(`DROP TABLE "api_keys"`);
    await queryRunner.query(`DROP TABLE "tenants"`);
    await queryRunner.query(`DROP FUNCTION berth_notify_api_keys_changed()`);
  }
}
