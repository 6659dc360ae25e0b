/** JSON values and their canonical form (object keys sorted), so equal values give equal bytes. */

export type Json = null | boolean | number | string | Json[] | { [field: string]: Json }

export function isJson (v: unknown, depth = 0): v is Json {
  if (depth > 64) return false
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return true
  if (typeof v === 'number') return Number.isFinite(v)
  if (Array.isArray(v)) return v.every((x) => isJson(x, depth + 1))
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v)
    if (proto !== Object.prototype && proto !== null) return false
    return Object.values(v as object).every((x) => isJson(x, depth + 1))
  }
  return false
}

/** JSON text with object keys in sorted order at every depth. */
export function canonicalJson (v: Json): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v)
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']'
  const keys = Object.keys(v).sort()
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(v[k])).join(',') + '}'
}

export function isPlainObject (v: unknown): v is { [field: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
