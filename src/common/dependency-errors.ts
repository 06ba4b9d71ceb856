/**
 * Recognises errors that mean "Postgres or Redis is unreachable" rather than
 * "the request is wrong", so they become 503 instead of 500.
 */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);

export function isDependencyUnavailable(error: unknown): boolean {
  if (!error || typeof error !== 'object') return false;
  const err = error as { code?: string; message?: string; driverError?: unknown; name?: string };
  if (err.code && NETWORK_CODES.has(err.code)) return true;
  // Postgres: 57P01 admin shutdown, 57P03 cannot connect now, 53300 too many connections, 08xxx connection exceptions.
  if (err.code && /^(08|57P0|53300)/.test(err.code)) return true;
  const message = err.message ?? '';
  if (
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Connection is closed|Stream isn't writeable|enableOfflineQueue|ECONNREFUSED|Reached the max retries per request limit/i.test(
      message,
    )
  ) {
    return true;
  }
  return err.driverError ? isDependencyUnavailable(err.driverError) : false;
}
