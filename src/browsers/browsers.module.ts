import { Module } from '@nestjs/common';
import { QueuesModule } from '../provisioning/queues.module';
import { SessionsModule } from '../sessions/sessions.module';
import { BrowserFilesService } from './browser-files.service';
import { BrowserLauncher } from './browser-launcher.service';
import { BrowserProfilesRepository } from './browser-profiles.repository';
import { BrowsersController } from './browsers.controller';
import { ProfilesController } from './profiles.controller';
import { StartUrlPolicy } from './start-url-policy';

/** The browser kind's API: launch, screenshot, downloads, uploads, profiles. */
@Module({
  imports: [SessionsModule, QueuesModule],
  controllers: [BrowsersController, ProfilesController],
  providers: [BrowserLauncher, BrowserFilesService, BrowserProfilesRepository, StartUrlPolicy],
})
export class BrowsersModule {}
