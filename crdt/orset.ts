/**
 * Observed-remove set, add-wins.
 *
 * Each add carries a unique tag: the version (HLC stamp, writer) of the add. A remove records the
 * tags of the member that its writer had observed; an add concurrent with the remove has a tag the
 * remover never saw, so it survives (add wins). Tags older than `reset` (a whole-value write of
 * the key) are dropped. `merge` is a join: commutative, associative and idempotent.
 */
import { compareStamps, compareVersions, type Stamp, type Version, stampToString } from './hlc.js'
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

/**
 * One member's state in the per-member form (log format 2): bounded by the number of writers, not
 * by how often the member was added and removed (dotted version vectors, as in an ORSWOT).
 *
 * `adds` maps each adder (writer key, hex) to the stamp of its newest add of the member: an adder's
 * later add supersedes its earlier ones. `removed` maps each adder to the newest of its adds that
 * some remover had observed: "every add of this member by that writer up to this stamp". An add is
 * live iff it is newer than its adder's removal stamp; an add a remover never saw is newer than
 * what it recorded, so it survives (add wins). The state is kept normalized: an add its own
 * adder's removal covers is dropped. `mergeMembers` is a join (pointwise max, then normalize):
 * commutative, associative and idempotent.
 */
export interface MemberState {
  readonly adds: ReadonlyMap<string, Stamp>
  readonly removed: ReadonlyMap<string, Stamp>
}

export const EMPTY_MEMBER: MemberState = Object.freeze({ adds: new Map(), removed: new Map() })

function maxInto (out: Map<string, Stamp>, src: ReadonlyMap<string, Stamp>): void {
  for (const [w, s] of src) {
    const had = out.get(w)
    if (had === undefined || compareStamps(s, had) > 0) out.set(w, s)
  }
}

/** Drops every add that its adder's removal covers. */
export function normalizeMember (adds: Map<string, Stamp>, removed: ReadonlyMap<string, Stamp>): MemberState {
  for (const [w, s] of adds) {
    const r = removed.get(w)
    if (r !== undefined && compareStamps(s, r) <= 0) adds.delete(w)
  }
  return { adds, removed }
}

export function mergeMembers (a: MemberState, b: MemberState): MemberState {
  const adds = new Map(a.adds)
  maxInto(adds, b.adds)
  const removed = new Map(a.removed)
  maxInto(removed, b.removed)
  return normalizeMember(adds, removed)
}

/** `own` with an add by `writer` (hex) at `stamp`: it supersedes the writer's earlier adds. */
export function addMember (own: MemberState, writer: string, stamp: Stamp): MemberState {
  const adds = new Map(own.adds)
  adds.set(writer, stamp)
  return normalizeMember(adds, own.removed)
}

/**
 * `own` having removed every add of `seen` (the merged state this peer observes) and its own
 * adds. The own adds count even when `seen` no longer lists them (another writer's removal
 * covers them there): the writer's state must say the writer removed them too, or they would
 * come back should that other removal stop counting (its writer removed with a cut before it).
 */
export function removeMember (own: MemberState, seen: MemberState): MemberState {
  const removed = new Map(own.removed)
  maxInto(removed, seen.adds)
  maxInto(removed, own.adds)
  return normalizeMember(new Map(own.adds), removed)
}

function version (writer: string, stamp: Stamp): Version {
  return { stamp, writer: Buffer.from(writer, 'hex') }
}

/**
 * The newest live add of the member newer than `reset` (a whole-value write of the key), or null
 * when the member is not in the set.
 */
export function liveAdd (s: MemberState, reset: Version | null): Version | null {
  let best: Version | null = null
  for (const [w, st] of s.adds) {
    const v = version(w, st)
    if (after(v, reset) && (best === null || compareVersions(v, best) > 0)) best = v
  }
  return best
}

/** The newest version the state mentions, added or removed (what decides a key's kind). */
export function newestTag (s: MemberState): Version | null {
  let best: Version | null = null
  for (const src of [s.adds, s.removed]) {
    for (const [w, st] of src) {
      const v = version(w, st)
      if (best === null || compareVersions(v, best) > 0) best = v
    }
  }
  return best
}

/**
 * The per-member states an OR-set of tags (log format 1) stands for: each adder's newest add of a
 * member, and each adder's newest removed add of it. A removed tag whose add is nowhere in `adds`
 * removes nothing, and is dropped. For tags a writer removes as a prefix of an adder's adds (every
 * tag a remover saw), which is all an honest log holds, the live members are the same.
 */
export function memberStates (adds: Adds, removed: Removed): Map<string, MemberState> {
  const acc = new Map<string, { adds: Map<string, Stamp>, removed: Map<string, Stamp> }>()
  const of = (member: Json): { adds: Map<string, Stamp>, removed: Map<string, Stamp> } => {
    const c = canonicalJson(member)
    let m = acc.get(c)
    if (m === undefined) acc.set(c, m = { adds: new Map(), removed: new Map() })
    return m
  }
  for (const [id, add] of adds) {
    const m = of(add.member)
    const w = hex(add.tag.writer)
    maxInto(m.adds, new Map([[w, add.tag.stamp]]))
    if (removed.has(id)) maxInto(m.removed, new Map([[w, add.tag.stamp]]))
  }
  const out = new Map<string, MemberState>()
  for (const [c, m] of acc) out.set(c, normalizeMember(m.adds, m.removed))
  return out
}
