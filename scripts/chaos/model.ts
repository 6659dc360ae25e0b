/**
 * The chaos test's reference model: the final state the CRDT rules dictate, computed the slow and
 * obvious way from the writer logs themselves — independent of the fold engine (lib/engine.ts and its rooms),
 * of the view store, of lib/membership.ts and of crdt/ (it shares only the on-log entry decoder,
 * lib/entry.ts, and msgpack for STATE payloads).
 *
 * 1. Membership (DESIGN.md "Membership"): membership records ordered by (HLC stamp, author key
 *    bytewise, index);
 *    a record counts iff its author is a member at that point and its index is below the
 *    author's cut; a counted add makes a member (unless the key was ever removed); a counted
 *    removal bars the key and lowers its cut to the recorded length.
 * 2. Data: each member's latest entry per key in its Hyperbee at its cut.
 * 3. Per key, the rules written out naively: the register is the greatest (stamp, writer) of all
 *    put/del registers; document fields and set tags count only if newer than the register; each
 *    field is its greatest version; a tag is live unless any writer removed it; the key reads as
 *    a document if its newest field is newer than its newest tag (added or removed), as a set if
 *    it has tags, else as the register's value (absent for a tombstone). Documents and sets are
 *    canonical JSON: object keys sorted, set members deduplicated by their canonical text and
 *    sorted by its UTF-8 bytes.
 */
import { decode as unpack } from '@msgpack/msgpack'
import type Hyperbee from 'hyperbee'
import type { MeshDB } from '../../index.js'
import { ADD_WRITER, DEL, PUT, REMOVE_WRITER, STATE, decodeData, decodeEntry, type DataEntry } from '../../lib/entry.js'

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
  /** Every log this peer holds: its bee and its length (all of it must be local). */
  logs: Map<string, { bee: Hyperbee, length: number }>
}

/** The logs a MeshDB holds, as the model's input. */
export function logsOf (db: MeshDB<any, any>): LogSource {
  const logs = new Map<string, { bee: Hyperbee, length: number }>()
  for (const [id, w] of db.engine.writers) logs.set(id, { bee: w.bee, length: w.core.contiguousLength })
  return { creator: hex(db.engine.key), logs }
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
}

interface MRecord { author: string, authorKey: Bytes, seq: number, v: V, type: number, target: string, length: number }

async function readRange (bee: Hyperbee, length: number, first: number): Promise<Array<{ seq: number, key: Bytes, value: Bytes }>> {
  if (length <= 1) return []
  const snap = bee.checkout(length)
  const out: Array<{ seq: number, key: Bytes, value: Bytes }> = []
  try {
    for await (const node of snap.createReadStream({ gte: Buffer.from([first]), lt: Buffer.from([first + 1]) })) {
      out.push({ seq: node.seq, key: node.key, value: node.value })
    }
  } finally {
    await snap.close()
  }
  return out
}

/** The membership records of one log (its 'm' namespace at its full length). */
async function recordsOf (src: LogSource, id: string): Promise<MRecord[]> {
  const log = src.logs.get(id)
  if (log === undefined) throw new Error(`model: member log ${id.slice(0, 8)} is not held`)
  const out: MRecord[] = []
  for (const node of await readRange(log.bee, log.length, 0x6d)) {
    const e = decodeEntry(node.value)
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
async function membership (src: LogSource): Promise<{ read: Set<string>, members: Map<string, MemberModel> }> {
  const read = new Set<string>()
  const records: MRecord[] = []
  let members = replay(src.creator, records)
  while (true) {
    const fresh = [...members.keys()].filter((id) => !read.has(id))
    if (fresh.length === 0) break
    for (const id of fresh) {
      read.add(id)
      records.push(...await recordsOf(src, id))
    }
    members = replay(src.creator, records)
  }
  return { read, members }
}

type J = null | boolean | number | string | J[] | { [k: string]: J }

/** JSON text with object keys sorted at every depth. */
export function canonical (v: J): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v)
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']'
  return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical(v[k] as J)).join(',') + '}'
}

/** One writer's contribution to a key, flattened. */
interface Contribution {
  regs: Array<V & { value: Bytes | null }>
  fields: Array<V & { name: string, value: J | undefined }>
  adds: Array<V & { member: J }>
  removed: V[]
}

function ver (wall: unknown, counter: unknown, writer: unknown): V {
  if (typeof wall !== 'number' || typeof counter !== 'number' || !(writer instanceof Uint8Array)) throw new Error('model: bad version in a STATE payload')
  return { wall, counter, writer: Buffer.from(writer) }
}

/** A data entry as the model sees it; STATE payloads are unpacked here, not by crdt/codec. */
export function contribution (e: DataEntry, writer: Bytes): Contribution {
  const c: Contribution = { regs: [], fields: [], adds: [], removed: [] }
  const v = { wall: e.stamp.wall, counter: e.stamp.counter, writer }
  if (e.type === PUT) c.regs.push({ ...v, value: Buffer.from(e.value) })
  else if (e.type === DEL) c.regs.push({ ...v, value: null })
  else if (e.type === STATE) {
    const raw = unpack(e.state) as [number, unknown[] | null, unknown[][], unknown[][], unknown[][]]
    if (!Array.isArray(raw) || raw.length !== 5 || raw[0] !== 1) throw new Error('model: bad STATE payload')
    const [, reg, fields, adds, removed] = raw
    if (reg !== null) c.regs.push({ ...ver(reg[0], reg[1], reg[2]), value: reg[3] === null ? null : Buffer.from(reg[3] as Uint8Array) })
    for (const f of fields) c.fields.push({ ...ver(f[1], f[2], f[3]), name: f[0] as string, value: f[4] === null ? undefined : (f[4] as J[])[0] })
    for (const a of adds) c.adds.push({ ...ver(a[0], a[1], a[2]), member: a[3] as J })
    for (const r of removed) c.removed.push(ver(r[0], r[1], r[2]))
  }
  return c
}

function maxOf<T extends V> (xs: T[]): T | null {
  let best: T | null = null
  for (const x of xs) if (best === null || cmp(x, best) > 0) best = x
  return best
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** What a key reads as, from every member's contribution; null when absent. */
export function decide (parts: Contribution[]): { value: Bytes | null, why: string } {
  const reg = maxOf(parts.flatMap((p) => p.regs))
  const fields = parts.flatMap((p) => p.fields).filter((f) => newer(f, reg))
  const adds = parts.flatMap((p) => p.adds).filter((a) => newer(a, reg))
  const removed = parts.flatMap((p) => p.removed).filter((r) => newer(r, reg))
  const newestField = maxOf(fields)
  const newestTag = maxOf([...adds, ...removed])

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
    return { value: Buffer.from(canonical(doc)), why: `doc (newest field ${vid(newestField)})` }
  }
  if (newestTag !== null) {
    const gone = new Set(removed.map(vid))
    const live = new Set<string>()
    for (const a of adds) if (!gone.has(vid(a))) live.add(canonical(a.member))
    const sorted = [...live].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    return { value: Buffer.from('[' + sorted.join(',') + ']'), why: `set (newest tag ${vid(newestTag)}, ${adds.length} adds, ${removed.length} removed)` }
  }
  if (reg !== null && reg.value !== null) return { value: reg.value, why: `register ${vid(reg)}` }
  return { value: null, why: reg === null ? 'nothing' : `tombstone ${vid(reg)}` }
}

/** The reference: membership and the expected view, from the logs alone. */
export async function reference (src: LogSource): Promise<Reference> {
  const { read, members } = await membership(src)
  const perKey = new Map<string, { key: Bytes, parts: Contribution[] }>()
  for (const [id, m] of members) {
    const log = src.logs.get(id)
    if (log === undefined) throw new Error(`model: member ${id.slice(0, 8)} is not held`)
    const len = Math.min(m.cut, log.length)
    const writer = Buffer.from(id, 'hex')
    for (const node of await readRange(log.bee, len, 0x64)) {
      const key = node.key.subarray(1)
      const kid = hex(key)
      let k = perKey.get(kid)
      if (k === undefined) perKey.set(kid, k = { key, parts: [] })
      k.parts.push(contribution(decodeData(node.key, node.value), writer))
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
  return { read, members, view, why }
}
