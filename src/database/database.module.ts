import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BerthConfig } from '../config/berth-config';
import { DatabaseMigrator } from './database-migrator';
import { dataSourceOptions } from './data-source-options';

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [BerthConfig],
      useFactory: (config: BerthConfig) => ({
        ...dataSourceOptions(config),
        // Boot fails quickly with a clear error instead of retrying for minutes.
        retryAttempts: 2,
        retryDelay: 1000,
      }),
    }),
  ],
  providers: [DatabaseMigrator],
})
export class DatabaseModule {}
