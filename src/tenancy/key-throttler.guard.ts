import { ExecutionContext, Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { ThrottlerException, ThrottlerGuard, ThrottlerRequest } from '@nestjs/throttler';
import type { Response } from 'express';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { AuthenticatedRequest } from './principal';
import { PUBLIC_ROUTE } from './public.decorator';

/**
 * Rate limits per API key (RATE_LIMIT_PER_MINUTE), counted in Redis so every
 * replica shares the count (@nestjs/throttler with @nest-lab's Redis
 * storage). Runs after ApiKeyGuard, so it counts keys, not addresses. If
 * Redis cannot count, the request goes through: an outage of the counter
 * must not take the API down with it.
 */
@Injectable()
export class KeyThrottlerGuard extends ThrottlerGuard {
  private readonly log = new Logger(KeyThrottlerGuard.name);

  protected async shouldSkip(context: ExecutionContext): Promise<boolean> {
    return this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [context.getHandler(), context.getClass()]) ?? false;
  }

  protected async getTracker(req: Record<string, unknown>): Promise<string> {
    const request = req as unknown as AuthenticatedRequest;
    return request.principal ? (request.principal.keyId ?? 'admin') : String(request.ip);
  }

  /**
   * One counter per key for the whole API. The library's default counts per
   * route (controller and handler in the key), which would let a key make
   * RATE_LIMIT_PER_MINUTE requests to every route.
   */
  protected generateKey(_context: ExecutionContext, tracker: string, throttlerName: string): string {
    return createHash('sha256').update(`${throttlerName}-${tracker}`).digest('hex');
  }

  protected async handleRequest(request: ThrottlerRequest): Promise<boolean> {
    try {
      return await super.handleRequest(request);
    } catch (error) {
      if (error instanceof ThrottlerException) {
        const res = request.context.switchToHttp().getResponse<Response>();
        const retryAfter = res.getHeader('Retry-After') ?? Math.ceil(request.ttl / 1000);
        res.setHeader('Retry-After', String(retryAfter));
        throw new DomainException(ErrorCode.RateLimited, `Rate limit of ${request.limit} requests per ${request.ttl / 1000} s for this API key reached`);
      }
      this.log.warn({ msg: 'rate limit not checked: the counter is unavailable', error: (error as Error).message });
      return true;
    }
  }
}
