/**
 * The state of one key: the composition of an LWW register (whole-value put/del), an LWW map
 * (document fields) and an OR-set (set members). The register's version is the reset of the other
 * two: a whole-value write drops every field and tag older than it.
 *
 * Which of the three a key reads as is decided by {@link render}, a pure function of the state.
 */
import { compareVersions, type Version } from './hlc.js'
import { canonicalJson, isPlainObject, type Json } from './json.js'
import { mergeRegisters, type Register } from './lww.js'
import { after, mergeFields, renderMap, type Fields } from './lwwmap.js'
import { members, mergeAdds, mergeRemoved, type Adds, type Removed } from './orset.js'

export interface KeyState {
  readonly reg: Register<Uint8Array> | null
  readonly fields: Fields
  readonly adds: Adds
  readonly removed: Removed
}

export const EMPTY: KeyState = Object.freeze({ reg: null, fields: new Map(), adds: new Map(), removed: new Map() })

/** Join of two key states: commutative, associative, idempotent. */
export function merge (a: KeyState, b: KeyState): KeyState {
  const reg = mergeRegisters(a.reg, b.reg)
  return {
    reg,
    fields: mergeFields(a.fields, b.fields, reg),
    adds: mergeAdds(a.adds, b.adds, reg),
    removed: mergeRemoved(a.removed, b.removed, reg)
  }
}

/** Join of any number of states. */
export function mergeAll (states: Iterable<KeyState>): KeyState {
  let out = EMPTY
  for (const s of states) out = merge(out, s)
  return out
}

export type Kind = 'none' | 'value' | 'doc' | 'set'

function newest (versions: Iterable<Version>): Version | null {
  let best: Version | null = null
  for (const v of versions) if (best === null || compareVersions(v, best) > 0) best = v
  return best
}

/**
 * What the key reads as. Fields or set tags newer than the register make it a document or a set
 * (if both, whichever has the newest version); otherwise it is the register's value, or absent.
 */
export function kind (s: KeyState): Kind {
  const f = newest(s.fields.values())
  const t = newest([...[...s.adds.values()].map((a) => a.tag), ...s.removed.values()])
  if (f !== null && (t === null || compareVersions(f, t) > 0)) return 'doc'
  if (t !== null) return 'set'
  return s.reg !== null && s.reg.value !== null ? 'value' : 'none'
}

const decoder = new TextDecoder('utf-8', { fatal: true })
const encoder = new TextEncoder()

/** The register's value read as a JSON object, or `{}` when it is not one. */
export function baseObject (reg: Register<Uint8Array> | null): { [field: string]: Json } {
  if (reg === null || reg.value === null) return {}
  try {
    const v: unknown = JSON.parse(decoder.decode(reg.value))
    return isPlainObject(v) ? v : {}
  } catch {
    return {}
  }
}

/** The document of a key state (its register's object with the live fields applied). */
export function doc (s: KeyState): { [field: string]: Json } {
  return renderMap(s.fields, baseObject(s.reg))
}

/** The bytes a key reads as in the view, or null when it is absent. Deterministic. */
export function render (s: KeyState): Uint8Array | null {
  switch (kind(s)) {
    case 'doc': return encoder.encode(canonicalJson(doc(s)))
    case 'set': return encoder.encode(canonicalJson(members(s.adds, s.removed)))
    case 'value': return (s.reg as Register<Uint8Array>).value
    default: return null
  }
}

/** Drops every field and tag that the register's version makes irrelevant. */
export function normalize (s: KeyState): KeyState {
  return merge(EMPTY, s)
}

export { after }
