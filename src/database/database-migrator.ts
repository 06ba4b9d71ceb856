import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { BerthConfig } from '../config/berth-config';
import { runMigrationsLocked } from './migrate';

/** Applies pending migrations before anything serves requests or takes jobs (RUN_MIGRATIONS_ON_START). */
@Injectable()
export class DatabaseMigrator implements OnModuleInit {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly config: BerthConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    if (this.config.database.runMigrationsOnStart) await runMigrationsLocked(this.dataSource);
  }
}
