import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BerthConfig } from '../config/berth-config';
import { DatabaseMigrator } from './database-migrator';
import { dataSourceOptions } from './data-source-options';
import { PgListener } from './pg-listener';

/** Postgres for every role: the pool (TypeORM), migrations at start-up, and change notifications. */
@Global()
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
  providers: [DatabaseMigrator, PgListener],
  exports: [PgListener],
})
export class DatabaseModule {}
