/** JSON values and their canonical form (object keys sorted), so equal values give equal bytes. */

export type Json = null | boolean | number | string | Json[] | { [field: string]: Json }

/**
 * Whether `v` is a JSON value that survives storage and the wire unchanged. Besides non-JSON
 * types, it refuses strings with lone surrogates (UTF-8 cannot carry them; msgpack turns long ones
 * into U+FFFD) and `__proto__` object keys (the msgpack decoder refuses them).
 */
export function isJson (v: unknown, depth = 0): v is Json {
  if (depth > 64) return false
  if (v === null || typeof v === 'boolean') return true
  if (typeof v === 'string') return isWellFormed(v)
  if (typeof v === 'number') return Number.isFinite(v)
  if (Array.isArray(v)) return v.every((x) => isJson(x, depth + 1))
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v)
    if (proto !== Object.prototype && proto !== null) return false
    return Object.entries(v as object).every(([k, x]) => isJsonKey(k) && isJson(x, depth + 1))
  }
  return false
}

/**
 * Whether `k` may be a key of an object inside a JSON value: well-formed, not `__proto__`.
 * (A document field name need only be well-formed: field names are not msgpack map keys.)
 */
export function isJsonKey (k: string): boolean {
  return k !== '__proto__' && isWellFormed(k)
}

const LONE_SURROGATE = /\p{Surrogate}/u

/** Whether a string is valid Unicode (no lone surrogates), so that UTF-8 round trips it. */
export function isWellFormed (s: string): boolean {
  return !LONE_SURROGATE.test(s)
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
