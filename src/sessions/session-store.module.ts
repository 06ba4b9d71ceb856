import { Module } from '@nestjs/common';
import { SessionAgentClient } from './session-agent.client';
import { SessionChangeFeed } from './session-change-feed';
import { SessionSignals } from './session-signals';
import { SessionUrls } from './session-urls';
import { SessionsRepository } from './sessions.repository';

/** Sessions as stored and reached: SQL, public URLs, the change feed, the agents' control API. No queues: the gateway role needs only this. */
@Module({
  providers: [SessionsRepository, SessionUrls, SessionChangeFeed, SessionSignals, SessionAgentClient],
  exports: [SessionsRepository, SessionUrls, SessionChangeFeed, SessionSignals, SessionAgentClient],
})
export class SessionStoreModule {}
