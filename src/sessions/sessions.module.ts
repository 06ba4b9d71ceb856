import { Module } from '@nestjs/common';
import { QueuesModule } from '../provisioning/queues.module';
import { SessionEvents } from './session-events';
import { SessionsRepository } from './sessions.repository';
import { SessionsService } from './sessions.service';
import { TerminalsController } from './terminals.controller';

@Module({
  imports: [QueuesModule],
  providers: [SessionsRepository, SessionsService, SessionEvents],
  exports: [SessionsRepository, SessionsService, SessionEvents],
})
export class SessionsModule {}

/** The HTTP side of sessions, only in the API process. */
@Module({ imports: [SessionsModule], controllers: [TerminalsController] })
export class SessionsApiModule {}
