import { Module } from '@nestjs/common';
import { KindsModule } from '../kinds/kinds.module';
import { QueuesModule } from '../provisioning/queues.module';
import { SessionStoreModule } from '../sessions/session-store.module';
import { PoolBinder } from './pool-binder';
import { PoolController } from './pool.controller';
import { PoolKeeper } from './pool-keeper';
import { WarmPoolRepository } from './warm-pool.repository';

/** Binding a claimed pool container: the API (in the launch) and the worker (finishing one) both do it. */
@Module({
  imports: [SessionStoreModule, QueuesModule],
  providers: [PoolBinder, WarmPoolRepository],
  exports: [PoolBinder, WarmPoolRepository],
})
export class PoolModule {}

/** Keeping the pool filled: the worker's part. */
@Module({
  imports: [PoolModule, SessionStoreModule, QueuesModule, KindsModule],
  providers: [PoolKeeper],
  exports: [PoolKeeper],
})
export class PoolKeeperModule {}

/** `GET /api/v1/pool` (admin). */
@Module({ imports: [PoolModule, KindsModule], controllers: [PoolController] })
export class PoolApiModule {}
