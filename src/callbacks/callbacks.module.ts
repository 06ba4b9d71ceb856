import { Module } from '@nestjs/common';
import { QueuesModule } from '../provisioning/queues.module';
import { SessionsModule } from '../sessions/sessions.module';
import { CallbacksController } from './callbacks.controller';
import { CallbacksService } from './callbacks.service';

@Module({
  imports: [SessionsModule, QueuesModule],
  controllers: [CallbacksController],
  providers: [CallbacksService],
})
export class CallbacksModule {}
