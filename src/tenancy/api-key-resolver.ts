import { Injectable, OnModuleInit } from '@nestjs/common';
import { timingSafeEqual } from 'node:crypto';
import { hashToken } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';
import { PgListener } from '../database/pg-listener';
import { Principal } from './principal';
import { DEFAULT_TENANT_ID, TenantsRepository } from './tenants.repository';

/** The channel the api_keys/tenants trigger notifies on: `key:<hash>` or `tenant:<id>`. */
export const API_KEYS_CHANGED_CHANNEL = 'berth_api_keys_changed';

/** Keys remembered in memory (valid and unknown alike); beyond this the oldest are dropped. */
const MAX_CACHED = 50_000;

/**
 * API key -> principal, without a database round trip in steady state: the
 * answer for each key hash is cached, and dropped the moment a key or its
 * tenant changes anywhere (Postgres NOTIFY from a trigger), so a revoked key
 * stops working on every replica within a second. While notifications are
 * down, every request asks Postgres.
 */
@Injectable()
export class ApiKeyResolver implements OnModuleInit {
  private readonly cache = new Map<string, Principal | null>();
  /** Bumped on every change: a lookup that overlapped one is not cached. */
  private epoch = 0;
  private readonly adminHash: Buffer | null;

  constructor(
    private readonly tenants: TenantsRepository,
    private readonly listener: PgListener,
    config: BerthConfig,
  ) {
    this.adminHash = config.tenancy.adminKeyHash ? Buffer.from(config.tenancy.adminKeyHash, 'hex') : null;
  }

  async onModuleInit(): Promise<void> {
    await this.tenants.ensureDefaultTenant();
    this.listener.subscribe(API_KEYS_CHANGED_CHANNEL, {
      onNotification: (payload) => {
        this.epoch++;
        if (payload.startsWith('key:')) {
          this.cache.delete(payload.slice(4));
        } else if (payload.startsWith('tenant:')) {
          const tenantId = payload.slice(7);
          for (const [hash, principal] of this.cache) if (principal?.tenantId === tenantId) this.cache.delete(hash);
        }
      },
      onResync: () => {
        this.epoch++;
        this.cache.clear();
      },
    });
  }

  async resolve(key: string): Promise<Principal | null> {
    const hash = hashToken(key);
    if (this.adminHash && timingSafeEqual(Buffer.from(hash, 'hex'), this.adminHash)) {
      return { tenantId: DEFAULT_TENANT_ID, keyId: null, actor: 'admin', admin: true, maxSessions: null, maxSessionsPerOwner: null };
    }
    if (this.listener.healthy) {
      const cached = this.cache.get(hash);
      if (cached !== undefined) return cached;
    }
    const epoch = this.epoch;
    const grant = await this.tenants.grantFor(hash);
    const principal: Principal | null = grant
      ? {
          tenantId: grant.tenantId,
          keyId: grant.keyId,
          actor: `key:${grant.keyName}`,
          admin: false,
          maxSessions: grant.maxSessions,
          maxSessionsPerOwner: grant.maxSessionsPerOwner,
        }
      : null;
    if (this.listener.healthy && epoch === this.epoch) {
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(hash, principal);
    }
    return principal;
  }
}
