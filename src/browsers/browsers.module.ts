import { Module } from '@nestjs/common';
import { SessionsModule } from '../sessions/sessions.module';
import { BrowserFilesService } from './browser-files.service';
import { BrowserLauncher } from './browser-launcher.service';
import { BrowsersController } from './browsers.controller';
import { StartUrlPolicy } from './start-url-policy';

/** The browser kind's API: launch, screenshot, downloads, uploads. */
@Module({
  imports: [SessionsModule],
  controllers: [BrowsersController],
  providers: [BrowserLauncher, BrowserFilesService, StartUrlPolicy],
})
export class BrowsersModule {}
