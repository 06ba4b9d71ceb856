import { DataSourceOptions } from 'typeorm';
import { MIGRATIONS } from '../../migrations';
import { BerthConfig } from '../config/berth-config';
import { Session } from '../sessions/session.entity';

export const ENTITIES = [Session];

export function dataSourceOptions(config: BerthConfig): DataSourceOptions {
  return {
    type: 'postgres',
    url: config.database.url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'berth_migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    migrationsRun: false,
    extra: {
      max: config.database.poolSize,
      // Fail fast when Postgres is unreachable, so the API answers 503 in
      // seconds rather than hanging until the client gives up.
      connectionTimeoutMillis: 3000,
      statement_timeout: 15_000,
      query_timeout: 20_000,
    },
  };
}
