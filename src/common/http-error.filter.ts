import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import type { Response } from 'express';
import { isDependencyUnavailable } from './dependency-errors';
import { DomainException, ERROR_HTTP_STATUS, ErrorCode } from './domain.exception';

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string | string[];
  code?: string;
}

/** The one error shape every response uses, whoever produces it. */
export function errorBody(statusCode: number, message: string | string[], code?: string): ErrorBody {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message, ...(code ? { code } : {}) };
}

/**
 * The one place errors become HTTP responses. Clients get a status, a code and
 * a readable message; never a stack trace. Unknown errors are logged in full.
 */
@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpError');

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const body = this.toBody(exception);
    const error = exception as Error;
    if (body.statusCode === 503) {
      // An outage of a backing service: expected, already explained to the client.
      this.logger.warn({ msg: 'request refused: dependency unavailable', error: error?.message });
    } else if (body.statusCode >= 500) {
      this.logger.error({ msg: 'request failed', status: body.statusCode, error: error?.message, stack: error?.stack });
    }
    if (response.headersSent) return;
    // Every 503 here is temporary (an outage, a session not routable yet): say when to retry.
    if (body.statusCode === 503) response.setHeader('Retry-After', '1');
    // A quota or rate limit: when to try again, if the exception knows (a rate limiter set it already).
    const retryAfter = exception instanceof DomainException ? exception.details.retryAfterSeconds : undefined;
    if (body.statusCode === 429 && typeof retryAfter === 'number') response.setHeader('Retry-After', String(retryAfter));
    response.status(body.statusCode).json(body);
  }

  private toBody(exception: unknown): ErrorBody {
    if (exception instanceof DomainException) {
      const statusCode = ERROR_HTTP_STATUS[exception.code];
      return errorBody(statusCode, exception.message, exception.code);
    }
    if (exception instanceof HttpException) {
      const statusCode = exception.getStatus();
      const payload = exception.getResponse();
      const message =
        typeof payload === 'string' ? payload : ((payload as { message?: string | string[] }).message ?? exception.message);
      return errorBody(statusCode, message);
    }
    if (isDependencyUnavailable(exception)) {
      return errorBody(
        503,
        'A backing service (database or queue) is unreachable; nothing was changed. Retry shortly.',
        ErrorCode.DependencyUnavailable,
      );
    }
    return errorBody(500, 'Internal server error');
  }
}
