/**
 * The chaos test's reference model: the final state the CRDT rules dictate, computed the slow and
 * obvious way from the writer logs themselves — independent of the fold engine (lib/engine.ts and its rooms),
 * of the view store, of lib/membership.ts and of crdt/ (it shares only the on-log decoders,
 * lib/entry.ts, and msgpack for STATE payloads).
 *
 * 1. Membership (DESIGN.md "Membership"): membership records ordered by (HLC stamp, author key
 *    bytewise, index);
 *    a record counts iff its author is a member at that point and its index is below the
 *    author's cut; a counted add makes a member (unless the key was ever removed); a counted
 *    removal bars the key and lowers its cut to the recorded length.
 * 2. Data: every entry of each member's data range ('d' to 'g': whole values, set members,
 *    document fields) in its Hyperbee at its cut — each is the writer's latest for its bee key.
 *    Both log formats: format 1 keeps a writer's whole contribution to a key in one STATE entry
 *    under 'd'; format 2 writes PUT/DEL under 'd', one FIELD entry per document field under 'f'
 *    and one MEMBER entry per set member under 'e'. A MEMBER entry whose adds name a writer other
 *    than its log's is a bad entry: skipped (and counted: honest writers write none).
 * 3. Per key, the rules written out naively: the register is the greatest (stamp, writer) of all
 *    put/del registers (a STATE's included); document fields and set tags count only if newer
 *    than the register; each field is its greatest version (STATE fields and FIELD entries
 *    alike); an add (stamp, adder, member) is live unless removed: a format-1 tag by its exact id
 *    in any STATE's removed list, any add by a format-2 removal (`removed[adder] ≥ its stamp` in
 *    any writer's MEMBER entry for the same member). The key reads as a document if its newest
 *    field (deleted ones included) is newer than its newest tag (adds, format-1 removed tags, and
 *    format-2 removals as the version (stamp, adder)), as a set if it has tags, else as the
 *    register's value (absent for a tombstone). Documents and sets are canonical JSON: object keys
 *    sorted, set members deduplicated by their canonical text and sorted by its UTF-8 bytes.
 */
import { decode as unpack } from '@msgpack/msgpack'
import type Hyperbee from 'hyperbee'
import type { MeshDB } from '../../index.js'
import type Hypercore from 'hypercore'
import { ADD_WRITER, DEL, EPOCH, FIELD, KEY_GRANT, MEMBER, PRINCIPAL, PUT, REMOVE_WRITER, STATE, decodeData, decodeEntry, parseDataKey, type DataEntry } from '../../lib/entry.js'
import { decodeNode } from '../../lib/blocks.js'

type Bytes = Buffer
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** A version: (wall, counter, writer key). */
interface V { wall: number, counter: number, writer: Bytes }

function cmp (a: V, b: V): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1
  return Buffer.compare(a.writer, b.writer)
}

const newer = (v: V, than: V | null): boolean => than === null || cmp(v, than) > 0
const vid = (v: V): string => `${v.wall}.${v.counter}.${hex(v.writer)}`

export interface LogSource {
  /** Hex key of the creator's log. */
  creator: string
  /**
   * Every log this peer holds: its bee and its length (all of it must be local, but for blocks
   * compaction cleared: no tree the model reads needs them).
   */
  logs: Map<string, { bee: Hyperbee, length: number, core?: Hypercore }>
  /**
   * An encrypted database: membership is read from each log's clear blocks, one by one (its tree
   * nodes lie in sealed blocks, which this peer may not hold the keys of); data through the tree,
   * decrypted by the peer's keys.
   */
  encrypted?: boolean
}

/** The logs a MeshDB holds, as the model's input. */
export function logsOf (db: MeshDB<any, any>): LogSource {
  const logs = new Map<string, { bee: Hyperbee, length: number, core?: Hypercore }>()
  for (const [id, w] of db.engine.writers) logs.set(id, { bee: w.bee, length: w.core.length, core: w.core })
  return { creator: hex(db.engine.key), logs, encrypted: db.privacy === 'encrypted' }
}

export interface MemberModel { cut: number, removed: boolean }

export interface Reference {
  /** Logs whose membership records the model read: the members. */
  read: Set<string>
  members: Map<string, MemberModel>
  /** The expected view: (key, value) sorted by key bytes. */
  view: Array<[Bytes, Bytes]>
  /** Per key, how it was decided (for failure messages). */
  why: Map<string, string>
  /** Entries skipped as bad (a MEMBER entry naming another adder): honest writers write none. */
  bad: number
}

interface MRecord { author: string, authorKey: Bytes, seq: number, v: V, type: number, target: string, length: number }

/** Every node of a log at `length` whose key's first byte is in [first, last]. */
async function readRange (bee: Hyperbee, length: number, first: number, last = first): Promise<Array<{ seq: number, key: Bytes, value: Bytes }>> {
  if (length <= 1) return []
  const snap = bee.checkout(length)
  const out: Array<{ seq: number, key: Bytes, value: Bytes }> = []
  try {
    for await (const node of snap.createReadStream({ gte: Buffer.from([first]), lt: Buffer.from([last + 1]) })) {
      out.push({ seq: node.seq, key: node.key, value: node.value })
    }
  } finally {
    await snap.close()
  }
  return out
}

/**
 * The latest node of each key in the 'm' namespace of an encrypted log at `length`, from its clear
 * blocks alone (a block as stored: 16 bytes of padding, kind 0 for a clear one, then the node).
 * Membership nodes are never deleted, so the latest put of a key is its value. A block not held
 * is skipped: compaction cleared it here or on every peer that held it (the final checks check
 * that before the model runs), and compaction keeps each key's latest node.
 */
async function clearMembership (core: Hypercore, length: number): Promise<Array<{ seq: number, key: Bytes, value: Bytes }>> {
  const latest = new Map<string, { seq: number, key: Bytes, value: Bytes }>()
  for (let i = 1; i < length; i++) {
    const raw = await core.get(i, { wait: false, raw: true } as never) as Uint8Array | null
    if (raw === null) continue
    if (raw[0] !== 0) continue // sealed: data, or the header
    const node = decodeNode(raw.subarray(16))
    if (node.key.byteLength === 0 || node.key[0] !== 0x6d) throw new Error(`model: a clear block ${i} outside the membership namespace`)
    if (node.value === null) throw new Error('model: a deleted membership key')
    latest.set(hex(node.key), { seq: i, key: Buffer.from(node.key), value: Buffer.from(node.value) })
  }
  return [...latest.values()].sort((a, b) => Buffer.compare(a.key, b.key))
}

/** The membership records of one log (its 'm' namespace at its full length). */
async function recordsOf (src: LogSource, id: string): Promise<MRecord[]> {
  const log = src.logs.get(id)
  if (log === undefined) throw new Error(`model: member log ${id.slice(0, 8)} is not held`)
  const out: MRecord[] = []
  const nodes = src.encrypted === true
    ? await clearMembership(log.core ?? (() => { throw new Error('model: an encrypted log without its core') })(), log.length)
    : await readRange(log.bee, log.length, 0x6d)
  for (const node of nodes) {
    const e = decodeEntry(node.value)
    // an encrypted database's key grants and stated public keys: not membership changes
    if (src.encrypted === true && (e.type === KEY_GRANT || e.type === PRINCIPAL || e.type === EPOCH)) continue
    if (e.type !== ADD_WRITER && e.type !== REMOVE_WRITER) throw new Error('model: data entry under a membership key')
    const target = hex(e.writer)
    if (hex(node.key) !== (e.type === ADD_WRITER ? '6d61' : '6d72') + target) throw new Error('model: membership key mismatch')
    out.push({
      author: id,
      authorKey: Buffer.from(id, 'hex'),
      seq: node.seq,
      v: { wall: e.stamp.wall, counter: e.stamp.counter, writer: Buffer.from(id, 'hex') },
      type: e.type,
      target,
      length: e.type === REMOVE_WRITER ? e.length : 0
    })
  }
  return out
}

/** One replay of the rule over a set of records. */
function replay (creator: string, records: MRecord[]): Map<string, MemberModel> {
  const sorted = [...records].sort((a, b) => cmp(a.v, b.v) || a.seq - b.seq)
  const members = new Map<string, MemberModel>([[creator, { cut: Infinity, removed: false }]])
  const barred = new Set<string>()
  for (const r of sorted) {
    const author = members.get(r.author)
    if (author === undefined || r.seq >= author.cut) continue
    if (r.type === ADD_WRITER) {
      if (!barred.has(r.target) && !members.has(r.target)) members.set(r.target, { cut: Infinity, removed: false })
    } else {
      barred.add(r.target)
      const m = members.get(r.target)
      if (m !== undefined) {
        m.cut = Math.min(m.cut, r.length)
        m.removed = true
      }
    }
  }
  return members
}

/**
 * Membership by the rule in DESIGN.md. DESIGN replays the records of every log reached through
 * add entries; a record only counts if its author is a member when it is replayed, and members
 * are never dropped, so replaying the records of the members alone gives the same members: the
 * model replays the records of the logs found to be members until no new member appears (and so
 * needs only the members' logs, whichever other logs a peer holds).
 */
export async function membership (src: LogSource): Promise<{ read: Set<string>, members: Map<string, MemberModel> }> {
  const read = new Set<string>()
  const tried = new Set<string>()
  const records: MRecord[] = []
  let members = replay(src.creator, records)
  while (true) {
    const fresh = [...members.keys()].filter((id) => !tried.has(id))
    if (fresh.length === 0) break
    for (const id of fresh) {
      tried.add(id)
      // a log an intermediate replay names may be one no final replay counts (an add past its
      // adder's cut, read before the removal that cuts it): the peer need not hold it
      if (!src.logs.has(id)) continue
      read.add(id)
      records.push(...await recordsOf(src, id))
    }
    members = replay(src.creator, records)
  }
  for (const id of members.keys()) if (!src.logs.has(id)) throw new Error(`model: member log ${id.slice(0, 8)} is not held`)
  return { read, members }
}

type J = null | boolean | number | string | J[] | { [k: string]: J }

/** JSON text with object keys sorted at every depth. */
export function canonical (v: J): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v)
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']'
  return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical(v[k] as J)).join(',') + '}'
}

/** A stamp as the model orders it (the writer only breaks ties between versions). */
interface Stamp { wall: number, counter: number }
const cmpStamps = (a: Stamp, b: Stamp): number => a.wall !== b.wall ? (a.wall < b.wall ? -1 : 1) : a.counter !== b.counter ? (a.counter < b.counter ? -1 : 1) : 0

/** What one entry says of a key, flattened. */
interface Contribution {
  regs: Array<V & { value: Bytes | null }>
  fields: Array<V & { name: string, value: J | undefined }>
  /** Adds: a format-1 tag (in a STATE) or a format-2 add (in a MEMBER entry), as (stamp, adder). */
  adds: Array<V & { member: J, legacy: boolean }>
  /** Format-1 removals: the exact tags removed. */
  removed: V[]
  /** Format-2 removals: every add of `member` by the adder (`writer`) up to this stamp. */
  clears: Array<V & { member: string }>
}

const empty = (): Contribution => ({ regs: [], fields: [], adds: [], removed: [], clears: [] })

function ver (wall: unknown, counter: unknown, writer: unknown): V {
  if (typeof wall !== 'number' || typeof counter !== 'number' || !(writer instanceof Uint8Array)) throw new Error('model: bad version in a STATE payload')
  return { wall, counter, writer: Buffer.from(writer) }
}

/**
 * A data entry as the model sees it, from its bee key and value; `writer` is the log's key. STATE
 * payloads are unpacked here, not by crdt/codec. Null for a bad entry (a MEMBER entry whose adds
 * name another writer than the log's).
 */
export function contribution (beeKey: Bytes, value: Bytes, writer: Bytes): Contribution | null {
  const e: DataEntry = decodeData(beeKey, value)
  const { part } = parseDataKey(beeKey)
  const c = empty()
  const v = { wall: e.stamp.wall, counter: e.stamp.counter, writer }
  if (e.type === PUT) c.regs.push({ ...v, value: Buffer.from(e.value) })
  else if (e.type === DEL) c.regs.push({ ...v, value: null })
  else if (e.type === STATE) {
    const raw = unpack(e.state) as [number, unknown[] | null, unknown[][], unknown[][], unknown[][]]
    if (!Array.isArray(raw) || raw.length !== 5 || raw[0] !== 1) throw new Error('model: bad STATE payload')
    const [, reg, fields, adds, removed] = raw
    if (reg !== null) c.regs.push({ ...ver(reg[0], reg[1], reg[2]), value: reg[3] === null ? null : Buffer.from(reg[3] as Uint8Array) })
    for (const f of fields) c.fields.push({ ...ver(f[1], f[2], f[3]), name: f[0] as string, value: f[4] === null ? undefined : (f[4] as J[])[0] })
    for (const a of adds) c.adds.push({ ...ver(a[0], a[1], a[2]), member: a[3] as J, legacy: true })
    for (const r of removed) c.removed.push(ver(r[0], r[1], r[2]))
  } else if (e.type === FIELD) {
    if (part === null) throw new Error('model: a FIELD entry under a whole-value key')
    c.fields.push({ ...v, name: part.name.toString('utf8'), value: e.value === null ? undefined : e.value[0] as J })
  } else if (e.type === MEMBER) {
    if (part === null) throw new Error('model: a MEMBER entry under a whole-value key')
    const text = part.name.toString('utf8')
    const mine = hex(writer)
    for (const adder of e.state.adds.keys()) if (adder !== mine) return null
    for (const [adder, s] of e.state.adds) c.adds.push({ wall: s.wall, counter: s.counter, writer: Buffer.from(adder, 'hex'), member: JSON.parse(text) as J, legacy: false })
    for (const [adder, s] of e.state.removed) c.clears.push({ wall: s.wall, counter: s.counter, writer: Buffer.from(adder, 'hex'), member: text })
  }
  return c
}

function maxOf<T extends V> (xs: T[]): T | null {
  let best: T | null = null
  for (const x of xs) if (best === null || cmp(x, best) > 0) best = x
  return best
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** What a key reads as, from every member's contributions; null when absent. */
export function decide (parts: Contribution[]): { value: Bytes | null, why: string } {
  const reg = maxOf(parts.flatMap((p) => p.regs))
  const fields = parts.flatMap((p) => p.fields).filter((f) => newer(f, reg))
  const adds = parts.flatMap((p) => p.adds).filter((a) => newer(a, reg))
  const removed = parts.flatMap((p) => p.removed).filter((r) => newer(r, reg))
  const clears = parts.flatMap((p) => p.clears)
  const newestField = maxOf(fields)
  const newestTag = maxOf([...adds, ...removed, ...clears.filter((r) => newer(r, reg))])

  if (newestField !== null && (newestTag === null || cmp(newestField, newestTag) > 0)) {
    let base: { [k: string]: J } = {}
    if (reg !== null && reg.value !== null) {
      try {
        const parsed = JSON.parse(utf8.decode(reg.value)) as J
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) base = parsed
      } catch {}
    }
    const doc: { [k: string]: J } = { ...base }
    const names = [...new Set(fields.map((f) => f.name))]
    for (const name of names) {
      const win = maxOf(fields.filter((f) => f.name === name)) as (typeof fields)[number]
      if (win.value === undefined) delete doc[name]
      else doc[name] = win.value
    }
    return { value: Buffer.from(canonical(doc)), why: `doc (newest field ${vid(newestField)}, ${names.length} fields)` }
  }
  if (newestTag !== null) {
    const gone = new Set(removed.map(vid))
    const live = new Set<string>()
    for (const a of adds) {
      const member = canonical(a.member)
      if (a.legacy && gone.has(vid(a))) continue
      if (clears.some((r) => r.member === member && r.writer.equals(a.writer) && cmpStamps(r, a) >= 0)) continue
      live.add(member)
    }
    const sorted = [...live].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    return { value: Buffer.from('[' + sorted.join(',') + ']'), why: `set (newest tag ${vid(newestTag)}, ${adds.length} adds, ${removed.length} removed tags, ${clears.length} removals by adder, ${sorted.length} live)` }
  }
  if (reg !== null && reg.value !== null) return { value: reg.value, why: `register ${vid(reg)}` }
  return { value: null, why: reg === null ? 'nothing' : `tombstone ${vid(reg)}` }
}

/** The reference: membership and the expected view, from the logs alone. */
export async function reference (src: LogSource): Promise<Reference> {
  const { read, members } = await membership(src)
  const perKey = new Map<string, { key: Bytes, parts: Contribution[] }>()
  let bad = 0
  for (const [id, m] of members) {
    const log = src.logs.get(id)
    if (log === undefined) throw new Error(`model: member ${id.slice(0, 8)} is not held`)
    const len = Math.min(m.cut, log.length)
    const writer = Buffer.from(id, 'hex')
    // 'd' (whole values), 'e' (set members), 'f' (document fields)
    for (const node of await readRange(log.bee, len, 0x64, 0x66)) {
      const key = Buffer.from(parseDataKey(node.key).key)
      const kid = hex(key)
      let k = perKey.get(kid)
      if (k === undefined) perKey.set(kid, k = { key, parts: [] })
      const c = contribution(node.key, node.value, writer)
      if (c === null) bad++
      else k.parts.push(c)
    }
  }
  const view: Array<[Bytes, Bytes]> = []
  const why = new Map<string, string>()
  for (const { key, parts } of perKey.values()) {
    const d = decide(parts)
    why.set(key.toString('latin1'), d.why)
    if (d.value !== null) view.push([key, d.value])
  }
  view.sort((a, b) => Buffer.compare(a[0], b[0]))
  return { read, members, view, why, bad }
}
