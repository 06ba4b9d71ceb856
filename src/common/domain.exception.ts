/**
 * Domain errors carry a stable string code; HttpErrorFilter maps the code to an
 * HTTP status at the edge, so services never think in HTTP.
 */
export enum ErrorCode {
  InvalidRequest = 'invalid_request',
  SessionNotFound = 'session_not_found',
  /** Something inside a session (a download, a profile) does not exist. */
  NotFound = 'not_found',
  SessionNotLive = 'session_not_live',
  CallbackUnauthorized = 'callback_unauthorized',
  /** No API key, or one that is unknown, revoked or of a disabled tenant. */
  Unauthenticated = 'unauthenticated',
  Forbidden = 'forbidden',
  QuotaExceeded = 'quota_exceeded',
  RateLimited = 'rate_limited',
  /** An Idempotency-Key replayed with a different request. */
  IdempotencyMismatch = 'idempotency_key_mismatch',
  DependencyUnavailable = 'dependency_unavailable',
  /** Not an error of the caller's: the same request will succeed shortly. */
  NotReady = 'not_ready',
  /** A session's container did not answer a call Berth made to it. */
  UpstreamUnavailable = 'upstream_unavailable',
  /** The request conflicts with the current state (a profile in use, ...). */
  Conflict = 'conflict',
  PayloadTooLarge = 'payload_too_large',
}

export class DomainException extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'DomainException';
  }
}

export const ERROR_HTTP_STATUS: Record<ErrorCode, number> = {
  [ErrorCode.InvalidRequest]: 400,
  [ErrorCode.SessionNotFound]: 404,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.SessionNotLive]: 409,
  [ErrorCode.CallbackUnauthorized]: 401,
  [ErrorCode.Unauthenticated]: 401,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.QuotaExceeded]: 429,
  [ErrorCode.RateLimited]: 429,
  [ErrorCode.IdempotencyMismatch]: 422,
  [ErrorCode.DependencyUnavailable]: 503,
  [ErrorCode.NotReady]: 503,
  [ErrorCode.UpstreamUnavailable]: 502,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.PayloadTooLarge]: 413,
};
