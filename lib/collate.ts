/**
 * Index keys as bytes that sort as the values do: null < false < true < numbers (by value) <
 * strings (by their UTF-8 bytes). Each encoding is self-delimiting (no encoding is a prefix of
 * another), so an index entry can be the index key's bytes followed by the user key's.
 *
 *   null 0x10 · false 0x20 · true 0x21
 *   number 0x30 ‖ float64 big-endian, sign bit flipped (negative numbers: every bit flipped)
 *   string 0x40 ‖ UTF-8 with 0x00 written 0x00 0xff ‖ 0x00 0x00
 */
import { isWellFormed, type Json } from '../crdt/json.js'

/** A value an index can hold: a JSON scalar. */
export type IndexKey = null | boolean | number | string

/** A JSON scalar (a string well-formed UTF-16: a lone surrogate has no UTF-8 of its own). */
export function isIndexKey (v: unknown): v is IndexKey {
  return v === null || typeof v === 'boolean' || (typeof v === 'string' && isWellFormed(v)) || (typeof v === 'number' && Number.isFinite(v))
}

export function encodeIndexKey (v: IndexKey): Buffer {
  if (v === null) return Buffer.from([0x10])
  if (v === false) return Buffer.from([0x20])
  if (v === true) return Buffer.from([0x21])
  if (typeof v === 'number') {
    const b = Buffer.alloc(9)
    b[0] = 0x30
    b.writeDoubleBE(v === 0 ? 0 : v, 1) // -0 is 0
    if ((b[1] as number) & 0x80) for (let i = 1; i < 9; i++) b[i] = ~(b[i] as number) & 0xff
    else b[1] = (b[1] as number) | 0x80
    return b
  }
  const utf8 = Buffer.from(v, 'utf8')
  let zeros = 0
  for (const x of utf8) if (x === 0) zeros++
  const out = Buffer.alloc(1 + utf8.length + zeros + 2)
  out[0] = 0x40
  let j = 1
  for (const x of utf8) {
    out[j++] = x
    if (x === 0) out[j++] = 0xff
  }
  return out // ends with 0x00 0x00 (alloc)
}

/** Decodes the index key at the start of `b`; returns it and how many bytes it took. */
export function decodeIndexKey (b: Buffer): { value: IndexKey, size: number } {
  switch (b[0]) {
    case 0x10: return { value: null, size: 1 }
    case 0x20: return { value: false, size: 1 }
    case 0x21: return { value: true, size: 1 }
    case 0x30: {
      const x = Buffer.from(b.subarray(1, 9))
      if ((x[0] as number) & 0x80) x[0] = (x[0] as number) & 0x7f
      else for (let i = 0; i < 8; i++) x[i] = ~(x[i] as number) & 0xff
      return { value: x.readDoubleBE(0), size: 9 }
    }
    case 0x40: {
      const bytes: number[] = []
      let i = 1
      while (i < b.length) {
        const x = b[i] as number
        if (x === 0) {
          if (b[i + 1] === 0xff) {
            bytes.push(0)
            i += 2
            continue
          }
          return { value: Buffer.from(bytes).toString('utf8'), size: i + 2 }
        }
        bytes.push(x)
        i++
      }
      throw new RangeError('an index key string without its end')
    }
    default: throw new RangeError(`not an index key (tag ${String(b[0])})`)
  }
}

/** The first byte string after every string that starts with `prefix`. */
export function prefixEnd (prefix: Buffer): Buffer {
  const out = Buffer.from(prefix)
  let i = out.length - 1
  while (i >= 0 && out[i] === 0xff) i--
  if (i < 0) return Buffer.concat([prefix, Buffer.from([0xff])]) // (never here: index prefixes start below 0xff)
  out[i] = (out[i] as number) + 1
  return out.subarray(0, i + 1)
}

/**
 * The index keys a field path picks out of a value: the value at the dotted path (`a.b.c`; the
 * whole value for ''), one key for a scalar, one per distinct scalar element for an array (a set's
 * members, an array field), none for an object or a missing field.
 */
export function fieldKeys (value: Json | undefined, path: readonly string[]): IndexKey[] {
  let v: Json | undefined = value
  for (const p of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return []
    v = (v as Record<string, Json>)[p]
  }
  if (v === undefined) return []
  if (Array.isArray(v)) return v.filter(isIndexKey)
  return isIndexKey(v) ? [v] : []
}
