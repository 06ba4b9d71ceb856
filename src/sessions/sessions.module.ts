import { Module } from '@nestjs/common';
import { QueuesModule } from '../provisioning/queues.module';
import { SessionChangeFeed } from './session-change-feed';
import { SessionEvents } from './session-events';
import { SessionUrls } from './session-urls';
import { SessionsRepository } from './sessions.repository';
import { SessionsService } from './sessions.service';
import { TerminalsController } from './terminals.controller';

/** Sessions as stored: SQL, public URLs and the change feed. No queues: the gateway role needs only this. */
@Module({
  providers: [SessionsRepository, SessionUrls, SessionChangeFeed, SessionEvents],
  exports: [SessionsRepository, SessionUrls, SessionChangeFeed, SessionEvents],
})
export class SessionStoreModule {}

/** The session lifecycle as the API and the worker drive it (it queues jobs). */
@Module({
  imports: [SessionStoreModule, QueuesModule],
  providers: [SessionsService],
  exports: [SessionStoreModule, SessionsService],
})
export class SessionsModule {}

/** The HTTP side of sessions, only in the API process. */
@Module({ imports: [SessionsModule], controllers: [TerminalsController] })
export class SessionsApiModule {}
