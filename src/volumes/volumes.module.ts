import { Module } from '@nestjs/common';
import { QueuesModule } from '../provisioning/queues.module';
import { ProfilesController, WorkspacesController } from './volumes.controller';
import { VolumesRepository } from './volumes.repository';

/** Persistent storage records (profiles, workspaces). */
@Module({
  providers: [VolumesRepository],
  exports: [VolumesRepository],
})
export class VolumesModule {}

/** `/api/v1/profiles` and `/api/v1/workspaces`. */
@Module({
  imports: [VolumesModule, QueuesModule],
  controllers: [ProfilesController, WorkspacesController],
})
export class VolumesApiModule {}
