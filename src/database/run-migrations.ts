import { DataSource } from 'typeorm';
import { loadConfigOrExit } from '../config/load-config';
import { dataSourceOptions } from './data-source-options';
import { runMigrationsLocked } from './migrate';

/** `npm run migration:run`: apply pending migrations and exit. */
async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const dataSource = new DataSource(dataSourceOptions(config));
  await dataSource.initialize();
  try {
    const applied = await runMigrationsLocked(dataSource);
    console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Database is up to date.');
  } finally {
    await dataSource.destroy();
  }
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
