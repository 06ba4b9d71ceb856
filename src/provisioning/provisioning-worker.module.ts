import { Module } from '@nestjs/common';
import { BrowserProfilesRepository } from '../browsers/browser-profiles.repository';
import { CleanupScheduler } from '../cleanup/cleanup.scheduler';
import { CleanupService } from '../cleanup/cleanup.service';
import { KindsModule } from '../kinds/kinds.module';
import { PlatformModule } from '../platform/platform.module';
import { SessionsModule } from '../sessions/sessions.module';
import { LifecycleProcessor } from './lifecycle.processor';
import { ProvisionProcessor } from './provision.processor';
import { QueuesModule } from './queues.module';
import { SessionProvisioner } from './session-provisioner.service';

/** Everything the worker runs: the BullMQ processors and the cleanup schedule. */
@Module({
  imports: [SessionsModule, QueuesModule, PlatformModule, KindsModule],
  providers: [SessionProvisioner, CleanupService, CleanupScheduler, ProvisionProcessor, LifecycleProcessor, BrowserProfilesRepository],
  exports: [SessionProvisioner, CleanupService],
})
export class ProvisioningWorkerModule {}
