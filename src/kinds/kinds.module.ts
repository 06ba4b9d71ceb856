import { Module } from '@nestjs/common';
import { SessionStoreModule } from '../sessions/session-store.module';
import { BrowserKind } from './browser.kind';
import { KindProfiles } from './kind-profiles';
import { TerminalKind } from './terminal.kind';

@Module({
  imports: [SessionStoreModule],
  providers: [TerminalKind, BrowserKind, KindProfiles],
  exports: [KindProfiles],
})
export class KindsModule {}
