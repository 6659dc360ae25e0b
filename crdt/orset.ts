/**
 * Observed-remove set, add-wins.
 *
 * Each add carries a unique tag: the version (HLC stamp, writer) of the add. A remove records the
 * tags of the member that its writer had observed; an add concurrent with the remove has a tag the
 * remover never saw, so it survives (add wins). Tags older than `reset` (a whole-value write of
 * the key) are dropped. `merge` is a join: commutative, associative and idempotent.
 */
import { type Version, stampToString } from './hlc.js'
import { canonicalJson, type Json } from './json.js'
import { after, maxVersion } from './lwwmap.js'

export interface Tag extends Version {}

export interface SetState {
  readonly reset: Version | null
  /** tag id → the member added under that tag */
  readonly adds: ReadonlyMap<string, { readonly tag: Tag, readonly member: Json }>
  /** tag id → tag, for every removed tag */
  readonly removed: ReadonlyMap<string, Tag>
}

export const EMPTY_SET: SetState = Object.freeze({ reset: null, adds: new Map(), removed: new Map() })

function hex (b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/** The identity of a tag, as a string that sorts like the version order. */
export function tagId (t: Tag): string {
  return stampToString(t.stamp) + ':' + hex(t.writer)
}

export type Adds = SetState['adds']
export type Removed = SetState['removed']

export function mergeAdds (a: Adds, b: Adds, reset: Version | null): Map<string, { tag: Tag, member: Json }> {
  const out = new Map<string, { tag: Tag, member: Json }>()
  for (const src of [a, b]) {
    for (const [id, add] of src) if (after(add.tag, reset) && !out.has(id)) out.set(id, add)
  }
  return out
}

export function mergeRemoved (a: Removed, b: Removed, reset: Version | null): Map<string, Tag> {
  const out = new Map<string, Tag>()
  for (const src of [a, b]) {
    for (const [id, tag] of src) if (after(tag, reset)) out.set(id, tag)
  }
  return out
}

export function mergeSets (a: SetState, b: SetState): SetState {
  const reset = maxVersion(a.reset, b.reset)
  return { reset, adds: mergeAdds(a.adds, b.adds, reset), removed: mergeRemoved(a.removed, b.removed, reset) }
}

/** The live members, sorted by canonical JSON text, without duplicates. */
export function members (adds: Adds, removed: Removed): Json[] {
  const live = new Map<string, Json>()
  for (const [id, add] of adds) {
    if (removed.has(id)) continue
    live.set(canonicalJson(add.member), add.member)
  }
  return [...live.keys()].sort(compareUtf8).map((k) => live.get(k) as Json)
}

/** The ids of the live tags of `member` (what a remove of it observes). */
export function tagsOf (adds: Adds, removed: Removed, member: Json): Tag[] {
  const want = canonicalJson(member)
  const out: Tag[] = []
  for (const [id, add] of adds) {
    if (!removed.has(id) && canonicalJson(add.member) === want) out.push(add.tag)
  }
  return out
}

export function compareUtf8 (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}
