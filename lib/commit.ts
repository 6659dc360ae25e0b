/**
 * The view commit: a key's changed entries are merged into its slots and parts, each changed part
 * is rendered into its item, the key's row follows, the digest follows every row and item that
 * changed, the change feed numbers the keys whose value changed (lib/changes.ts), and all of it,
 * with the checkpoints and the clock, lands in one atomic batch (invariant 4).
 *
 * A key is its whole-value slots (PUT/DEL, and format-1 STATE entries) and its parts: one row per
 * document field and per set member, each holding every member's latest entry for that part. A
 * change to some parts costs those parts (plus the key's record and row): the key's head keeps the
 * newest field and tag versions among all its parts, which is all that decides whether it reads as
 * a document or a set. When the register's version changes (a whole-value write resets the parts)
 * or a cut moves back (a removal), every part of the key is re-rendered and the head recomputed.
 */
import { encodeField, encodeMember } from '../crdt/codec.js'
import { compareStamps, compareVersions, type Stamp, type Version } from '../crdt/hlc.js'
import { type Register } from '../crdt/lww.js'
import { newestTag } from '../crdt/orset.js'
import { fieldItem, legacyParts, maxVersion, memberItem, partsKind, removedTag, structuredKind } from '../crdt/parts.js'
import { ChangeFeed, type FloorStore, type Origin } from './changes.js'
import { digestToBuffer, partDigest, replaceEntry } from './digest.js'
import type { Indexes } from './indexes.js'
import { readRowOver } from './render.js'
import { FIELD_NS, LEGACY, MEMBER_NS, decodeEntry, isState, legacyState, mergeField, mergeMember, registerOf, type PartKind } from './entry.js'
import { ROW_DOC, ROW_SET, ROW_VALUE, decodeSlots, partKey, partPrefix, seqBytes, setSlot, type BatchOp, type Head, type Slot, type ViewStore } from './view.js'

/** The operations of one commit being built, the digest they lead to, and the keys whose value they change. */
export class Staged {
  readonly ops: BatchOp[] = []
  /** The keys whose value (what they read as) this commit changes, each once. */
  readonly changed: Buffer[] = []
  /** The keys this commit leaves as tombstones (absent, with slots or parts), each with the generation it held them under and its newest stamp. */
  readonly dead: Array<[Buffer, number | undefined, Stamp]> = []
  /** The tombstones this commit makes read as present again, each with its generation. */
  readonly revived: Array<[Buffer, number]> = []
  constructor (public digest: bigint, readonly origin: Origin) {}
}

/** New entries for one part of a key: by writer (hex), the entry, or null for none. */
export interface PartChange {
  readonly kind: PartKind
  readonly name: Buffer
  readonly slots: Map<string, Uint8Array | null>
}

/** What changed for one user key in a fold step or an own write. */
export interface KeyChange {
  readonly key: Buffer
  /** New whole-value entries, by writer (hex); null: the writer has none now. */
  readonly slots: Map<string, Uint8Array | null>
  /** New part entries, by part key (hex). */
  readonly parts: Map<string, PartChange>
  /** A cut moved back: every part of the key is re-merged and its head recomputed. */
  full: boolean
}

export function keyChange (key: Buffer): KeyChange {
  return { key, slots: new Map(), parts: new Map(), full: false }
}

/** The newest field and tag versions of one part. */
function partHead (kind: PartKind, slots: readonly Slot[]): { field: Version | null, tag: Version | null } {
  if (kind === FIELD_NS) return { field: mergeField(slots), tag: null }
  return { field: null, tag: newestTag(mergeMember(slots)) }
}

/** What a part renders as in the view (its item), or null when it does not count. */
function partItem (kind: PartKind, slots: readonly Slot[], reset: Version | null): Uint8Array | null {
  if (kind === FIELD_NS) {
    const f = mergeField(slots)
    return f === null ? null : fieldItem(f, reset)
  }
  return memberItem(mergeMember(slots), reset) ? new Uint8Array(0) : null
}

/**
 * The newest tag the format-1 STATE slots of a key list as removed. It counts as a tag of the key
 * (it makes the key a set) even when its add is gone, and then no member part carries it.
 */
function stateRemoved (slots: readonly Slot[]): Version | null {
  return slots.some((s) => isState(s)) ? removedTag(legacyState(slots)) : null
}

function joinHeads (a: Head, b: { field: Version | null, tag: Version | null }): Head {
  return { field: maxVersion(a.field, b.field), tag: maxVersion(a.tag, b.tag), reset: a.reset }
}

function sameVersion (a: Version | null, b: Version | null): boolean {
  return a === null || b === null ? a === b : compareVersions(a, b) === 0
}

function equalBytes (a: Uint8Array | null | undefined, b: Uint8Array | null | undefined): boolean {
  if (a == null || b == null) return (a == null) === (b == null)
  return Buffer.compare(a, b) === 0
}

/** The kind a part key names (its byte after the user key). */
function kindOfPart (part: Buffer, key: Uint8Array): PartKind {
  return part[partPrefix(key, null).byteLength] as PartKind
}

/** The newest stamp among a key's entries: its whole-value slots, and its parts' newest field and tag (the head). */
function newestOf (slots: readonly Slot[], head: Head | null): Stamp {
  let newest: Stamp = { wall: 0, counter: 0 }
  const over = (st: Stamp | undefined): void => { if (st !== undefined && compareStamps(st, newest) > 0) newest = st }
  for (const sl of slots) over(decodeEntry(sl.entry).stamp)
  over(head?.field?.stamp)
  over(head?.tag?.stamp)
  return newest
}

/** The values row of a key: kind byte ‖ payload (see view.ts), or null when it reads as absent. */
function rowOf (reg: Register<Uint8Array> | null, head: Head | null): Buffer | null {
  switch (partsKind(reg, head?.field ?? null, head?.tag ?? null)) {
    case 'value': return Buffer.concat([Buffer.from([ROW_VALUE]), (reg as Register<Uint8Array>).value as Uint8Array])
    case 'doc': return Buffer.concat([Buffer.from([ROW_DOC]), reg?.value ?? new Uint8Array(0)])
    case 'set': return Buffer.from([ROW_SET])
    default: return null
  }
}

export class ViewCommit {
  /** The view digest (see digest.ts), current with the committed view. */
  digest = 0n
  /** The change feed: each commit that changes a key gets the next seq. */
  readonly feed: ChangeFeed
  /** The last tombstone generation, and how many tombstones the view holds (see `graves` in view.ts). */
  gen = 0
  graves = 0
  /**
   * How far the view reads each log's data once the commit being made lands: a new tombstone
   * generation records it (set by the engine; lib/stability.ts).
   */
  dataRead: () => Array<[Uint8Array, number]> = () => []

  constructor (private readonly view: ViewStore, floor: FloorStore | null = null, private readonly indexes: Indexes | null = null) {
    this.feed = new ChangeFeed(view, floor)
  }

  /** A new commit, starting from the committed digest: an own write's ('local') or a fold's. */
  begin (origin: Origin = 'remote'): Staged {
    return new Staged(this.digest, origin)
  }

  /**
   * Stages one key's changed entries: its slots, parts, items, head and row. True if what the key
   * reads as changed. A key is staged at most once per commit.
   */
  async stage (staged: Staged, ch: KeyChange): Promise<boolean> {
    const view = this.view
    const key = ch.key
    const rec = view.getRecordSync(key)
    let slots = rec.slots
    for (const [id, entry] of ch.slots) slots = setSlot(slots, Buffer.from(id, 'hex'), entry)
    const slotsChanged = ch.slots.size > 0

    // the parts this change writes, with their new slots
    const parts = new Map<string, { part: Buffer, kind: PartKind, slots: Slot[] }>()
    const partRow = (part: Buffer, kind: PartKind): { part: Buffer, kind: PartKind, slots: Slot[] } => {
      const id = part.toString('hex')
      let p = parts.get(id)
      if (p === undefined) parts.set(id, p = { part, kind, slots: view.getPartSync(part) })
      return p
    }
    for (const [id, pc] of ch.parts) {
      const p = partRow(Buffer.from(id, 'hex'), pc.kind)
      for (const [w, entry] of pc.slots) p.slots = setSlot(p.slots, Buffer.from(w, 'hex'), entry)
    }
    // format-1 STATE slots that changed: what they say of each field and member is re-projected
    const byWriter = (list: readonly Slot[], id: string): Slot | undefined => list.find((s) => Buffer.from(s.writer).toString('hex') === id)
    if ([...ch.slots.keys()].some((id) => isState(byWriter(rec.slots, id)) || isState(byWriter(slots, id)))) {
      const before = legacyParts(legacyState(rec.slots))
      const after = legacyParts(legacyState(slots))
      for (const name of new Set([...before.fields.keys(), ...after.fields.keys()])) {
        const f = after.fields.get(name)
        const p = partRow(partKey(key, FIELD_NS, Buffer.from(name)), FIELD_NS)
        p.slots = setSlot(p.slots, LEGACY, f === undefined ? null : encodeField(f))
      }
      for (const c of new Set([...before.members.keys(), ...after.members.keys()])) {
        const m = after.members.get(c)
        const p = partRow(partKey(key, MEMBER_NS, Buffer.from(c)), MEMBER_NS)
        p.slots = setSlot(p.slots, LEGACY, m === undefined || (m.adds.size === 0 && m.removed.size === 0) ? null : encodeMember(m))
      }
    }

    // the register, decoded only when a whole-value entry changed or a row needs its value
    let reg: Register<Uint8Array> | null | undefined = slotsChanged ? registerOf(slots) : undefined
    const register = (): Register<Uint8Array> | null => reg === undefined ? (reg = registerOf(slots)) : reg
    // format-1 removed tags, re-read whenever the whole-value slots change or the head is rebuilt
    const removed = slotsChanged || ch.full || rec.head === null ? stateRemoved(slots) : null
    const hasParts = rec.head !== null || parts.size > 0 || removed !== null
    const reset: Version | null = slotsChanged || rec.head === null ? register() : rec.head.reset
    let head: Head | null = rec.head
    let changed = false
    /** The items this commit changes (part key in hex → item, null: gone), for the indexes (when any is kept). */
    const indexed = this.indexes?.active === true
    const items = new Map<string, Uint8Array | null>()
    const item = (part: Buffer, before: Uint8Array | undefined, after: Uint8Array | null): void => {
      if (equalBytes(before, after)) return
      if (indexed) items.set(part.toString('hex'), after)
      staged.ops.push(view.putItem(part, after))
      if (before !== undefined) staged.digest = partDigest(staged.digest, part, before, -1)
      if (after !== null) staged.digest = partDigest(staged.digest, part, after, 1)
      changed = true
    }
    for (const p of parts.values()) staged.ops.push(view.putPart(p.part, p.slots))

    if (hasParts && (ch.full || rec.head === null || !sameVersion(rec.head.reset, reset))) {
      // every part of the key, re-rendered: its rows as they are now, with this change's laid over
      const rows = new Map<string, { part: Buffer, kind: PartKind, slots: Slot[] }>()
      if (rec.head !== null) {
        for await (const [part, raw] of view.scan('parts', partPrefix(key, null))) {
          rows.set(part.toString('hex'), { part, kind: kindOfPart(part, key), slots: decodeSlots(raw) })
        }
      }
      for (const [id, p] of parts) rows.set(id, p)
      const old = new Map<string, Uint8Array>()
      if (rec.head !== null) for await (const [part, raw] of view.scan('items', partPrefix(key, null))) old.set(part.toString('hex'), raw)
      let h: Head = { field: null, tag: removed, reset }
      let any = removed !== null
      for (const [id, p] of rows) {
        if (p.slots.length === 0) continue
        any = true
        h = joinHeads(h, partHead(p.kind, p.slots))
        const after = partItem(p.kind, p.slots, reset)
        item(p.part, old.get(id), after)
        old.delete(id)
      }
      for (const [id, before] of old) item(Buffer.from(id, 'hex'), before, null)
      head = any ? h : null
    } else if (hasParts) {
      let h: Head = joinHeads({ ...(rec.head as Head), reset }, { field: null, tag: removed })
      for (const p of parts.values()) {
        h = joinHeads(h, partHead(p.kind, p.slots))
        item(p.part, view.getItemSync(p.part), partItem(p.kind, p.slots, reset))
      }
      head = h
    }

    // The key's row: recomputed when its register changed, or when its parts now make it read
    // as another kind (with the register unchanged, a document's or set's row stays the same).
    const before = view.getRow(key)
    let row: Uint8Array | null | undefined = before
    const kindBefore = before === undefined ? null : before[0] === ROW_DOC ? 'doc' : before[0] === ROW_SET ? 'set' : null
    if (slotsChanged || ch.full || structuredKind(reset, head?.field ?? null, head?.tag ?? null) !== kindBefore) {
      const after = rowOf(register(), head)
      row = after
      if (!equalBytes(before, after)) {
        staged.ops.push(view.putValue(key, after))
        staged.digest = replaceEntry(staged.digest, key, before, after)
        changed = true
      }
    }
    if (slotsChanged || head !== rec.head) staged.ops.push(view.putRecord(key, { slots, head }))
    // a key left absent with slots or parts is a tombstone (dropped once stable: lib/stability.ts);
    // while the view holds none, no key has a grave to look up
    const grave = (): number | undefined => this.graves === 0 ? undefined : view.getGraveSync(key)
    // (a key with a format-1 STATE slot is never one: a format-1 write re-states its writer's
    // whole contribution, versions from before the delete among it)
    if (row == null && (slots.length > 0 || head !== null) && !slots.some((x) => isState(x))) staged.dead.push([key, grave(), newestOf(slots, head)])
    else if (before === undefined) {
      const gen = grave()
      if (gen !== undefined) staged.revived.push([key, gen])
    }
    if (changed) {
      staged.changed.push(key)
      // the indexes take the key's value as the commit leaves it, in the same batch
      if (indexed) (this.indexes as Indexes).stage(staged.ops, key, row == null ? undefined : await readRowOver(view, key, Buffer.from(row), items))
    }
    return changed
  }

  /**
   * Commits a staged batch with the digest, and the clock's last stamp and newest observed remote
   * stamp if given, in one atomic write. An own write leaves the clock out: its entry, the newest
   * stamp and what it had seen, is in the own log, which the engine reads back on open.
   */
  async commit (staged: Staged, clock: { readonly last: Stamp, readonly seen: Stamp | null } | null): Promise<void> {
    if (clock !== null) staged.ops.push(this.view.putStamp(clock.last))
    if (clock?.seen != null) staged.ops.push(this.view.putStamp(clock.seen, 'seen'))
    staged.ops.push(this.view.putMeta('hash', digestToBuffer(staged.digest)))
    const gen = this.graveOps(staged)
    this.indexes?.finish(staged.ops)
    const seq = this.feed.stage(staged)
    await this.feed.reserve(seq)
    // a map index this process cannot keep goes stale before a commit changes a key under it
    if (staged.changed.length > 0 && this.indexes?.unkept === true) await this.indexes.markStale()
    const before = this.feed.begin()
    try {
      await this.view.write(staged.ops)
    } catch (err) {
      this.feed.landed(null, [], staged.origin, before)
      throw err
    }
    this.digest = staged.digest
    if (gen !== null) [this.gen, this.graves] = gen
    this.feed.landed(seq, staged.changed, staged.origin, before)
  }

  /** Stages the commit's tombstones; the generation and tombstone count it leaves, or null if it changes neither. */
  private graveOps (staged: Staged): [number, number] | null {
    if (staged.dead.length === 0 && staged.revived.length === 0) return null
    const view = this.view
    let graves = this.graves
    const gen = staged.dead.length > 0 ? this.gen + 1 : this.gen
    for (const [key, from] of staged.revived) {
      staged.ops.push(...view.delGrave(key, from))
      graves--
    }
    if (staged.dead.length > 0) {
      let newest = staged.dead[0][2]
      for (const [, , st] of staged.dead) if (compareStamps(st, newest) > 0) newest = st
      staged.ops.push(view.putDeath(gen, this.dataRead(), newest))
      for (const [key, from] of staged.dead) {
        staged.ops.push(...view.putGrave(key, from, gen))
        if (from === undefined) graves++
      }
      staged.ops.push(view.putMeta('gen', seqBytes(gen)))
    }
    staged.ops.push(view.putMeta('graves', seqBytes(graves)))
    return [gen, graves]
  }
}
