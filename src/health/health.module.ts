import { Module } from '@nestjs/common';
import { PlatformModule } from '../platform/platform.module';
import { QueuesModule } from '../provisioning/queues.module';
import { HealthController } from './health.controller';

@Module({ imports: [QueuesModule, PlatformModule], controllers: [HealthController] })
export class HealthModule {}
