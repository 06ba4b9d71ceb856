import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { DomainException, ErrorCode } from '../common/domain.exception';
import { ApiKeyResolver } from './api-key-resolver';
import { AuthenticatedRequest } from './principal';
import { ADMIN_ROUTE, PUBLIC_ROUTE } from './public.decorator';

/**
 * Every route needs `Authorization: Bearer <API key>` unless marked
 * @Public(); @AdminOnly() routes need the admin key. Resolving a key costs no
 * database query in steady state (ApiKeyResolver caches, invalidated by NOTIFY).
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeyResolver,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const key = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1];
    const principal = key ? await this.keys.resolve(key) : null;
    if (!principal) throw new DomainException(ErrorCode.Unauthenticated, 'A valid API key is required: Authorization: Bearer <key>');
    if (this.reflector.getAllAndOverride<boolean>(ADMIN_ROUTE, targets) && !principal.admin) {
      throw new DomainException(ErrorCode.Forbidden, 'This route needs the admin key');
    }
    request.principal = principal;
    return true;
  }
}
