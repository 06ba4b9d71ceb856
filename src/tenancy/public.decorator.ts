import { SetMetadata } from '@nestjs/common';

export const PUBLIC_ROUTE = 'berth:public';
export const ADMIN_ROUTE = 'berth:admin';

/** No API key needed (container callbacks authenticate with their own secret; health is for probes). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

/** Only the admin key (tenant and key management). */
export const AdminOnly = () => SetMetadata(ADMIN_ROUTE, true);
