import { Module } from '@nestjs/common';
import { SessionChangeFeed } from './session-change-feed';
import { SessionSignals } from './session-signals';
import { SessionUrls } from './session-urls';
import { SessionsRepository } from './sessions.repository';

/** Sessions as stored: SQL, public URLs and the change feed. No queues: the gateway role needs only this. */
@Module({
  providers: [SessionsRepository, SessionUrls, SessionChangeFeed, SessionSignals],
  exports: [SessionsRepository, SessionUrls, SessionChangeFeed, SessionSignals],
})
export class SessionStoreModule {}
