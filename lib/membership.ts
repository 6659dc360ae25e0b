/**
 * Membership resolution: one deterministic replay, no I/O.
 *
 * Input: the membership entries of every log reached from the creator through add-writer entries,
 * each with its author and its index in the author's log. They are ordered by (HLC stamp, author
 * key, index) and replayed. An entry counts iff, at that point, its author is a member and the
 * entry's index is below the author's cut. A counted add makes its target a member (unless it was
 * ever removed); a counted removal lowers the target's cut to the length it recorded, and the
 * target stays removed for good (a removal of a writer not yet added only bars it). Counted decisions are never revisited.
 * A counted add of a reader (an encrypted database's) makes its target a member with cut 0: it
 * receives the epoch keys, and none of its own entries ever count. Key grants are no membership
 * change (lib/epochs.ts reads them).
 *
 * Same records in, same members out — whatever order the logs arrived in.
 */
import { compareKeys, compareStamps, type Stamp } from '../crdt/hlc.js'
import { ADD_READER, ADD_WRITER, EPOCH, KEY_GRANT, PRINCIPAL, type MembershipEntry } from './entry.js'
import { hex } from './keys.js'

export interface MembershipRecord {
  readonly author: Uint8Array
  readonly seq: number
  readonly entry: MembershipEntry
}

export interface Member {
  /** Entries of this writer at indexes below the cut count; Infinity while not removed. */
  cut: number
  removed: boolean
  /** The stamp of the add that made it a member (null for the creator): its own entries sort after it. */
  since: Stamp | null
  /** A reader: receives the keys of an encrypted database, never writes (its cut is 0). */
  reader?: boolean
  /**
   * The stamp of its first counted removal: its entries stamped before it count wherever they
   * lie in its log, so until its log shows its clock past it, more of them may arrive.
   */
  removedAt?: Stamp
  /** Where that removal lies: its author (hex) and its index in the author's log. */
  removedBy?: { author: string, seq: number }
}


/** Whether a member's entries count now: a member, not removed. */
export function live (m: Member | undefined): m is Member {
  return m !== undefined && !m.removed
}

/** Whether a member may write: live, and no reader. */
export function liveWriter (m: Member | undefined): m is Member {
  return live(m) && m.reader !== true
}

/** How far a log counts: Infinity for a live writer, a removed one's cut, 0 for a reader or a log that is no member. */
export function countsTo (m: Member | undefined): number {
  if (m === undefined || m.reader === true) return 0
  return m.removed ? m.cut : Infinity
}

export function compareRecords (a: MembershipRecord, b: MembershipRecord): number {
  return compareStamps(a.entry.stamp, b.entry.stamp) || compareKeys(a.author, b.author) || a.seq - b.seq
}

/** Replays the records and returns every member (by hex key) with its cut. */
export function resolveMembers (creator: Uint8Array, records: Iterable<MembershipRecord>): Map<string, Member> {
  const members = new Map<string, Member>([[hex(creator), { cut: Infinity, removed: false, since: null }]])
  const removed = new Set<string>()
  for (const r of [...records].sort(compareRecords)) {
    const author = members.get(hex(r.author))
    if (author === undefined || r.seq >= author.cut) continue
    const e = r.entry
    if (e.type === KEY_GRANT || e.type === PRINCIPAL || e.type === EPOCH) continue
    const target = hex(e.writer)
    if (e.type === ADD_WRITER || e.type === ADD_READER) {
      const reader = e.type === ADD_READER
      if (!removed.has(target) && !members.has(target)) members.set(target, reader ? { cut: 0, removed: false, since: e.stamp, reader } : { cut: Infinity, removed: false, since: e.stamp })
      continue
    }
    removed.add(target)
    const m = members.get(target)
    if (m !== undefined) {
      m.cut = Math.min(m.cut, e.length)
      if (!m.removed) {
        m.removedAt = e.stamp
        m.removedBy = { author: hex(r.author), seq: r.seq }
      }
      m.removed = true
    }
  }
  return members
}
