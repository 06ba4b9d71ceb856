import { CreateSessions1795000000000 } from './1795000000000-CreateSessions';

/**
 * Every migration, oldest first. Listed explicitly (not globbed) so the same
 * array works from ts-jest, ts-node and the compiled dist/.
 */
export const MIGRATIONS = [CreateSessions1795000000000];
