import { Module } from '@nestjs/common';
import { KindsModule } from '../kinds/kinds.module';
import { PoolModule } from '../pool/pool.module';
import { QueuesModule } from '../provisioning/queues.module';
import { VolumesModule } from '../volumes/volumes.module';
import { SessionPresenter } from './session-presenter';
import { SessionStoreModule } from './session-store.module';
import { SessionEventStream } from './session-event-stream';
import { SessionsController } from './sessions.controller';
import { SessionsService } from './sessions.service';

/** The session lifecycle as the API and the worker drive it (it queues jobs), for every kind. */
@Module({
  imports: [SessionStoreModule, QueuesModule, KindsModule, VolumesModule, PoolModule],
  providers: [SessionsService, SessionPresenter],
  exports: [SessionStoreModule, KindsModule, PoolModule, SessionsService, SessionPresenter],
})
export class SessionsModule {}

/** `/api/v1/sessions`: every kind at once. */
@Module({ imports: [SessionsModule], controllers: [SessionsController], providers: [SessionEventStream] })
export class SessionsApiModule {}

