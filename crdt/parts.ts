/**
 * A key in parts (log format 2): its LWW register (whole-value put/del), one LWW register per
 * document field and one per-member state per set member, each merged on its own. The register's
 * version is the reset of the parts: a field or an add no newer than it does not count.
 *
 * The view keeps a key's parts in rows of their own and renders each one into an item (a live
 * field or member); {@link renderParts} is the same rendering done in one go, from a whole key.
 * Pure: no I/O.
 */
import { compareVersions, type Version } from './hlc.js'
import { canonicalJson, type Json } from './json.js'
import { type Register } from './lww.js'
import { after, type FieldValue } from './lwwmap.js'
import { baseObject, type Kind, type KeyState } from './keystate.js'
import { liveAdd, memberStates, newestTag, type MemberState } from './orset.js'

export interface KeyParts {
  readonly reg: Register<Uint8Array> | null
  /** field name → the field's merged register */
  readonly fields: ReadonlyMap<string, Register<FieldValue>>
  /** member's canonical JSON → the member's merged state */
  readonly members: ReadonlyMap<string, MemberState>
  /**
   * The newest tag that format-1 STATE entries list as removed: a tag version of the key even when
   * its add is gone and no member carries it (an adder that removed its own add).
   */
  readonly removed?: Version | null
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The item bytes of a deleted field: it removes the field from the register's object. */
export const DELETED_FIELD: Uint8Array = new Uint8Array(0)

/**
 * What a field renders as: null when it does not count (no newer than the reset), DELETED_FIELD
 * for a deleted field, else its value's canonical JSON.
 */
export function fieldItem (f: Register<FieldValue>, reset: Version | null): Uint8Array | null {
  if (!after(f, reset)) return null
  return f.value === null ? DELETED_FIELD : encoder.encode(canonicalJson(f.value[0]))
}

/** Whether a member is in the set: it has a live add newer than the reset. */
export function memberItem (m: MemberState, reset: Version | null): boolean {
  return liveAdd(m, reset) !== null
}

/** The greater of two versions (null is the least). */
export function maxVersion (a: Version | null, b: Version | null): Version | null {
  if (a === null) return b
  if (b === null) return a
  return compareVersions(a, b) >= 0 ? a : b
}

/**
 * What a key reads as, from its register and the newest version among its fields and among its
 * set tags (added or removed), counted over every part: the newest of them that is newer than the
 * reset decides between a document and a set; with neither, the register's value or nothing.
 */
export function partsKind (reg: Register<Uint8Array> | null, newestField: Version | null, newestTag: Version | null): Kind {
  return structuredKind(reg, newestField, newestTag) ?? (reg !== null && reg.value !== null ? 'value' : 'none')
}

/** The part of {@link partsKind} that needs only the reset's version: 'doc', 'set', or null for neither. */
export function structuredKind (reset: Version | null, newestField: Version | null, newestTag: Version | null): 'doc' | 'set' | null {
  const f = newestField !== null && after(newestField, reset) ? newestField : null
  const t = newestTag !== null && after(newestTag, reset) ? newestTag : null
  if (f !== null && (t === null || compareVersions(f, t) > 0)) return 'doc'
  if (t !== null) return 'set'
  return null
}

/**
 * A document's bytes: the object the register holds (or `{}`), `base`, with the field items
 * applied in order, as canonical JSON.
 */
export function renderDoc (base: Uint8Array | null, fields: Iterable<readonly [string, Uint8Array]>): Uint8Array {
  const doc = baseObject(base === null ? null : { stamp: { wall: 0, counter: 0 }, writer: new Uint8Array(0), value: base })
  for (const [name, item] of fields) {
    if (item.byteLength === 0) delete doc[name]
    else Object.defineProperty(doc, name, { value: JSON.parse(decoder.decode(item)) as Json, enumerable: true, writable: true, configurable: true })
  }
  return encoder.encode(canonicalJson(doc))
}

/** A set's bytes: its members' canonical JSON texts, already in UTF-8 byte order, as a JSON array. */
export function renderSet (members: Iterable<Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [encoder.encode('[')]
  let first = true
  for (const m of members) {
    if (!first) parts.push(encoder.encode(','))
    parts.push(m)
    first = false
  }
  parts.push(encoder.encode(']'))
  return Buffer.concat(parts)
}

function utf8Order (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/** The newest field version and the newest tag version of a key's parts. */
export function newestParts (p: KeyParts): { field: Version | null, tag: Version | null } {
  let field: Version | null = null
  for (const f of p.fields.values()) field = maxVersion(field, f)
  let tag: Version | null = p.removed ?? null
  for (const m of p.members.values()) tag = maxVersion(tag, newestTag(m))
  return { field, tag }
}

/** The bytes a key in parts reads as, or null when it is absent. The view renders the same, part by part. */
export function renderParts (p: KeyParts): Uint8Array | null {
  const { field, tag } = newestParts(p)
  switch (partsKind(p.reg, field, tag)) {
    case 'doc': {
      const items: Array<[string, Uint8Array]> = []
      for (const [name, f] of p.fields) {
        const item = fieldItem(f, p.reg)
        if (item !== null) items.push([name, item])
      }
      return renderDoc(p.reg?.value ?? null, items)
    }
    case 'set': {
      const live = [...p.members].filter(([, m]) => memberItem(m, p.reg)).map(([c]) => c).sort(utf8Order)
      return renderSet(live.map((c) => encoder.encode(c)))
    }
    case 'value': return (p.reg as Register<Uint8Array>).value
    default: return null
  }
}

/** The newest tag a key state of log format 1 lists as removed. */
export function removedTag (s: KeyState): Version | null {
  let tag: Version | null = null
  for (const t of s.removed.values()) tag = maxVersion(tag, t)
  return tag
}

/** A key state of log format 1 (tags, whole contributions) as parts. */
export function legacyParts (s: KeyState): KeyParts {
  return { reg: s.reg, fields: s.fields, members: memberStates(s.adds, s.removed), removed: removedTag(s) }
}
