/**
 * The rows of a raw query. TypeORM's Postgres driver returns
 * `[rows, affectedCount]` for UPDATE and DELETE (with or without RETURNING)
 * and the rows alone for everything else; this takes either.
 */
export function rowsOf<T = Record<string, unknown>>(result: unknown): T[] {
  if (Array.isArray(result) && result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number') return result[0] as T[];
  return result as T[];
}
