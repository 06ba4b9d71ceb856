import { Module } from '@nestjs/common';
import { CleanupScheduler } from '../cleanup/cleanup.scheduler';
import { CleanupService } from '../cleanup/cleanup.service';
import { QueueReconciler } from '../cleanup/queue-reconciler';
import { KindsModule } from '../kinds/kinds.module';
import { VolumesModule } from '../volumes/volumes.module';
import { PlatformModule } from '../platform/platform.module';
import { PoolKeeperModule, PoolModule } from '../pool/pool.module';
import { SessionsModule } from '../sessions/sessions.module';
import { LifecycleProcessor } from './lifecycle.processor';
import { ProvisionProcessor } from './provision.processor';
import { QueuesModule } from './queues.module';
import { SessionProvisioner } from './session-provisioner.service';

/** Everything the worker runs: the BullMQ processors, the cleanup schedule and the warm pool's keeper. */
@Module({
  imports: [SessionsModule, QueuesModule, PlatformModule, KindsModule, VolumesModule, PoolModule, PoolKeeperModule],
  providers: [SessionProvisioner, CleanupService, CleanupScheduler, QueueReconciler, ProvisionProcessor, LifecycleProcessor],
  exports: [SessionProvisioner, CleanupService],
})
export class ProvisioningWorkerModule {}
