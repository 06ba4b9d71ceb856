import { CreateSessions1795000000000 } from './1795000000000-CreateSessions';
import { SessionGateway1795698000000 } from './1795698000000-SessionGateway';
import { BrowserSessions1795702000000 } from './1795702000000-BrowserSessions';
import { TenantsAndLifecycle1795710000000 } from './1795710000000-TenantsAndLifecycle';
import { WarmPool1795721400000 } from './1795721400000-WarmPool';
import { SweepIndexes1795731000000 } from './1795731000000-SweepIndexes';

/**
 * Every migration, oldest first. Listed explicitly (not globbed) so the same
 * array works from ts-jest, ts-node and the compiled dist/.
 */
export const MIGRATIONS = [CreateSessions1795000000000, SessionGateway1795698000000, BrowserSessions1795702000000, TenantsAndLifecycle1795710000000, WarmPool1795721400000, SweepIndexes1795731000000];
