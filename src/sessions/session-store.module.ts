import { Module } from '@nestjs/common';
import { SessionChangeFeed } from './session-change-feed';
import { SessionEvents } from './session-events';
import { SessionUrls } from './session-urls';
import { SessionsRepository } from './sessions.repository';

/** Sessions as stored: SQL, public URLs and the change feed. No queues: the gateway role needs only this. */
@Module({
  providers: [SessionsRepository, SessionUrls, SessionChangeFeed, SessionEvents],
  exports: [SessionsRepository, SessionUrls, SessionChangeFeed, SessionEvents],
})
export class SessionStoreModule {}
