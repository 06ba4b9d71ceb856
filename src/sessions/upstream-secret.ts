import { deriveSecret } from '../common/tokens';
import { BerthConfig } from '../config/berth-config';

/**
 * The secret the gateway (and the API, for control calls) presents to a
 * session's agent in `X-Berth-Secret`. Derived, not stored: every replica
 * computes it from BERTH_SECRET_KEY, the agent only holds its hash, and users
 * never see it.
 */
export function upstreamSecret(config: BerthConfig, sessionId: string): string {
  return deriveSecret(config.secretKey, 'session-upstream', sessionId.toLowerCase());
}

/** The header the agent checks (docs/SESSION-CONTAINERS.md). */
export const UPSTREAM_SECRET_HEADER = 'x-berth-secret';
