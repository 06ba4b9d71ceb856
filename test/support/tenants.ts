import { api } from './berth-harness';

/** A tenant with a key of its own, made with the admin key. */
export async function tenantWithKey(base: string, name: string, limits: Record<string, number> = {}): Promise<{ id: string; key: string; keyId: string }> {
  const tenant = await api(base, 'POST', '/api/v1/tenants', { name, ...limits });
  expect(tenant.status).toBe(201);
  const key = await api(base, 'POST', `/api/v1/tenants/${tenant.body.id}/keys`, { name: `${name}-key` });
  expect(key.status).toBe(201);
  expect(key.body.key).toMatch(/^bk_/);
  return { id: tenant.body.id, key: key.body.key, keyId: key.body.id };
}

export const as = (key: string) => ({ authorization: `Bearer ${key}` });
