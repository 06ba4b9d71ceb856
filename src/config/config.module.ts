import { DynamicModule, Global, Module } from '@nestjs/common';
import { BerthConfig } from './berth-config';

/** Makes the validated BerthConfig injectable everywhere. */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: BerthConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: BerthConfig, useValue: config }], exports: [BerthConfig] };
  }
}
