import { Module } from '@nestjs/common';
import { KindsModule } from '../kinds/kinds.module';
import { QueuesModule } from '../provisioning/queues.module';
import { VolumesModule } from '../volumes/volumes.module';
import { SessionAgentClient } from './session-agent.client';
import { SessionPresenter } from './session-presenter';
import { SessionStoreModule } from './session-store.module';
import { SessionEventStream } from './session-event-stream';
import { SessionsController } from './sessions.controller';
import { SessionsService } from './sessions.service';

/** The session lifecycle as the API and the worker drive it (it queues jobs), for every kind. */
@Module({
  imports: [SessionStoreModule, QueuesModule, KindsModule, VolumesModule],
  providers: [SessionsService, SessionPresenter, SessionAgentClient],
  exports: [SessionStoreModule, KindsModule, SessionsService, SessionPresenter, SessionAgentClient],
})
export class SessionsModule {}

/** `/api/v1/sessions`: every kind at once. */
@Module({ imports: [SessionsModule], controllers: [SessionsController], providers: [SessionEventStream] })
export class SessionsApiModule {}

