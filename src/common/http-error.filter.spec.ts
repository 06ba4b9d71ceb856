import { ArgumentsHost, BadRequestException, Logger } from '@nestjs/common';
import { QueryFailedError } from 'typeorm';
import { DomainException, ErrorCode } from './domain.exception';
import { HttpErrorFilter } from './http-error.filter';

function respond(exception: unknown): { status: number; body: Record<string, unknown>; headers: Record<string, string> } {
  const result = { status: 0, body: {} as Record<string, unknown>, headers: {} as Record<string, string> };
  const response = {
    headersSent: false,
    setHeader(name: string, value: string) {
      result.headers[name.toLowerCase()] = value;
    },
    status(code: number) {
      result.status = code;
      return this;
    },
    json(body: Record<string, unknown>) {
      result.body = body;
    },
  };
  const host = { switchToHttp: () => ({ getResponse: () => response }) } as unknown as ArgumentsHost;
  new HttpErrorFilter().catch(exception, host);
  return result;
}

describe('HttpErrorFilter', () => {
  // The filter logs 5xx on purpose; keep the test output clean.
  beforeAll(() => Logger.overrideLogger(false));

  it('maps domain codes to statuses', () => {
    expect(respond(new DomainException(ErrorCode.SessionNotFound, 'nope'))).toEqual({
      status: 404,
      body: { statusCode: 404, error: 'Not Found', message: 'nope', code: 'session_not_found' },
      headers: {},
    });
    expect(respond(new DomainException(ErrorCode.CallbackUnauthorized, 'x')).status).toBe(401);
    expect(respond(new DomainException(ErrorCode.SessionNotLive, 'x')).status).toBe(409);
  });

  it('keeps validation messages', () => {
    expect(respond(new BadRequestException(['limit must not be less than 1'])).body.message).toEqual(['limit must not be less than 1']);
  });

  it('turns unreachable dependencies into 503', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    expect(respond(refused).status).toBe(503);
    expect(respond(refused).headers['retry-after']).toBe('1');
    const wrapped = new QueryFailedError('SELECT 1', [], Object.assign(new Error('Connection terminated unexpectedly'), {}));
    expect(respond(wrapped).status).toBe(503);
  });

  it('hides the details of unexpected errors', () => {
    const { status, body } = respond(new TypeError("Cannot read properties of undefined (reading 'x')"));
    expect(status).toBe(500);
    expect(body).toEqual({ statusCode: 500, error: 'Internal Server Error', message: 'Internal server error' });
  });
});
