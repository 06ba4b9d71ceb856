import { Module } from '@nestjs/common';
import { SessionsModule } from '../sessions/sessions.module';
import { TerminalsController } from './terminals.controller';

@Module({ imports: [SessionsModule], controllers: [TerminalsController] })
export class TerminalsModule {}
