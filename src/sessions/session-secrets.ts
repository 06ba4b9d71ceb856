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

/**
 * The secret a session's container presents on callbacks. Derived too, so
 * no job payload (Redis) ever holds it and a provisioning job lost with
 * Redis can be rebuilt from Postgres alone, handing an adopted container the
 * same secret it already has.
 */
export function callbackSecret(config: BerthConfig, sessionId: string): string {
  return deriveSecret(config.secretKey, 'callback', sessionId.toLowerCase());
}

/**
 * The secret that opens a warm pool container before it is bound (the
 * worker's readiness checks, the bind itself). Bound, the container refuses
 * it and accepts only the session's upstream secret.
 */
export function poolSecret(config: BerthConfig, sessionId: string): string {
  return deriveSecret(config.secretKey, 'pool', sessionId.toLowerCase());
}

/** The header the agent checks (docs/SESSION-CONTAINERS.md). */
export const UPSTREAM_SECRET_HEADER = 'x-berth-secret';
