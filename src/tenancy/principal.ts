import { ExecutionContext, createParamDecorator } from '@nestjs/common';
import type { Request } from 'express';

/** Who is calling: the tenant whose key was presented, which key, and whether it is the admin key. */
export interface Principal {
  tenantId: string;
  /** The API key's id; null for the admin key (configured, not stored). */
  keyId: string | null;
  /** For the audit trail: `key:<name>` or `admin`. */
  actor: string;
  admin: boolean;
  /** The tenant's own limits, where set; else the configured defaults apply. */
  maxSessions: number | null;
  maxSessionsPerOwner: number | null;
}

export type AuthenticatedRequest = Request & { principal?: Principal };

/** The caller, as the API key guard resolved it. */
export const CurrentPrincipal = createParamDecorator((_data: unknown, context: ExecutionContext): Principal => {
  const principal = context.switchToHttp().getRequest<AuthenticatedRequest>().principal;
  if (!principal) throw new Error('CurrentPrincipal used on a public route');
  return principal;
});
