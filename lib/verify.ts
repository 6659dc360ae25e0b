/**
 * Checking the view against the logs, layer by layer: every member's log at its checkpoint against
 * the slots and parts the view holds for it, the slots and parts against the rows and items they
 * render to (and each key's head), and the rows and items against the stored digest. The logs are
 * the truth; anything else that disagrees is damage. It reads and changes nothing (the engine
 * rebuilds the view when it finds damage and is asked to repair).
 */
import { compareVersions, type Version } from '../crdt/hlc.js'
import { newestTag } from '../crdt/orset.js'
import { maxVersion, removedTag } from '../crdt/parts.js'
import { entryDigest } from './digest.js'
import {
  DATA_RANGE, FIELD, FIELD_NS, MEMBER, decodeData, fieldState, isState, legacyState, memberState, mergeField, mergeMember, parseDataKey,
  registerOf, renderKey, slotState, type PartKind, type EntrySlot, type PartSlots
} from './entry.js'
import { readRow } from './render.js'
import { decodeRecord, decodeSlots, partKey, partPrefix, type ViewStore } from './view.js'
import type { WriterLog } from './writer-log.js'

/** What `verify` found. */
export interface VerifyReport {
  /** Whether the view agrees with the logs. */
  ok: boolean
  /** Keys checked. */
  keys: number
  /** Entries read from the logs. */
  entries: number
  /** The first problems found (at most 20), for people. */
  problems: string[]
}

/** What the check reads: the view, the logs and how far the view reflects each. */
export interface VerifySource {
  readonly view: ViewStore
  readonly writers: ReadonlyMap<string, WriterLog>
  readonly checkpoints: ReadonlyMap<string, number>
  /** The digest the engine holds for the view. */
  readonly digest: bigint
}

const MAX_PROBLEMS = 20
const MOD = 1n << 256n

function sameVersion (a: Version | null, b: Version | null): boolean {
  return a === null || b === null ? a === b : compareVersions(a, b) === 0
}

/** The digest of the view recomputed from its rows and items (lib/digest.ts), read from LevelDB after a settle. */
export async function recomputeDigest (view: ViewStore): Promise<bigint> {
  await view.settle()
  let d = 0n
  for await (const [k, v] of view.values.iterator()) d += entryDigest(k, v)
  for await (const [k, v] of view.items.iterator()) d += entryDigest(k, Buffer.concat([Buffer.from([3]), v]))
  return ((d % MOD) + MOD) % MOD
}

/**
 * Checks the view against the logs. The caller holds the engine's queue: no fold or write runs
 * meanwhile. `progress(done, total)` is called after each writer's log is read.
 */
export async function verifyView (s: VerifySource, progress: (done: number, total: number) => void = () => {}): Promise<VerifyReport> {
  const { view } = s
  await view.settle() // the tables are read from LevelDB
  const problems: string[] = []
  const problem = (p: string): void => { if (problems.length < MAX_PROBLEMS) problems.push(p) }
  let entries = 0

  // 1. every member's log at its checkpoint: its latest valid entry for each whole value and part
  //    must be the view's slot for it, and the view must hold no other slot of that writer
  const expected = new Map<string, Map<string, string>>() // writer → row id → entry (hex)
  // user key (hex) → every writer's entries for it, to check a key the view holds no row of: a
  // tombstone compaction dropped (lib/stability.ts) reads as absent from them
  const byKey = new Map<string, { whole: EntrySlot[], parts: Map<string, PartSlots> }>()
  let done = 0
  for (const [id, len] of s.checkpoints) {
    const w = s.writers.get(id)
    const mine = new Map<string, string>()
    expected.set(id, mine)
    done++
    if (w === undefined) {
      problem(`the view has a checkpoint for writer ${id.slice(0, 8)}, whose log is not open`)
      continue
    }
    if (len > w.core.length) problem(`the view reflects ${len} entries of writer ${id.slice(0, 8)}, whose log holds ${w.core.length}: the view is ahead of the logs`)
    if (len <= 1 || len > w.core.length) continue
    const snap = w.bee.checkout(len)
    try {
      for await (const node of snap.createReadStream(DATA_RANGE, { wait: false })) {
        entries++
        try {
          const e = decodeData(node.key, node.value)
          if (e.type === FIELD) fieldState(e, w.key)
          else if (e.type === MEMBER) memberState(e, w.key)
          else slotState(e, w.key)
          const dk = parseDataKey(node.key)
          const row = dk.part === null ? 'k' + dk.key.toString('hex') : 'p' + partKey(dk.key, dk.part.kind, dk.part.name).toString('hex')
          mine.set(row, Buffer.from(node.value).toString('hex'))
          const kid = dk.key.toString('hex')
          let k = byKey.get(kid)
          if (k === undefined) byKey.set(kid, k = { whole: [], parts: new Map() })
          const sl = { writer: w.key, entry: node.value }
          if (dk.part === null) k.whole.push(sl)
          else {
            const pid = row
            let p = k.parts.get(pid)
            if (p === undefined) k.parts.set(pid, p = { kind: dk.part.kind, name: dk.part.name, slots: [] })
            ;(p.slots as EntrySlot[]).push(sl)
          }
        } catch {} // a bad entry: the fold skips it, and so has no slot for it
      }
    } catch (err) {
      problem(`writer ${id.slice(0, 8)}'s log cannot be read at ${len}: ${(err as Error).message}`)
    } finally {
      await snap.close()
    }
    progress(done, s.checkpoints.size)
  }
  const seen = new Map<string, number>()
  /** Each (row, writer) the view holds a slot of. */
  const held = new Set<string>()
  const slot = (row: string, writer: Uint8Array, entry: Uint8Array): void => {
    if (writer.byteLength === 0) return // what format-1 STATE entries say of a part: checked by rendering
    const id = Buffer.from(writer).toString('hex')
    held.add(row + '/' + id)
    const want = expected.get(id)?.get(row)
    if (want !== Buffer.from(entry).toString('hex')) problem(`${row.startsWith('k') ? 'key' : 'part'} ${row.slice(1, 41)}: writer ${id.slice(0, 8)}'s slot is not its entry in its log`)
    seen.set(id, (seen.get(id) ?? 0) + 1)
  }

  // 2. every key's slots and parts against its row, its items and its head
  let keys = 0
  const keyed = new Set<string>()
  for await (const [key, raw] of view.slots.iterator()) {
    keys++
    keyed.add(key.toString('hex'))
    let rec
    try {
      rec = decodeRecord(raw)
    } catch {
      problem(`key ${key.toString('hex').slice(0, 40)}: its record does not decode`)
      continue
    }
    for (const sl of rec.slots) slot('k' + key.toString('hex'), sl.writer, sl.entry)
    const parts: PartSlots[] = []
    const at = partPrefix(key, null).byteLength
    try {
      for await (const [part, rawSlots] of view.scan('parts', partPrefix(key, null))) {
        const slots = decodeSlots(rawSlots)
        for (const sl of slots) slot('p' + part.toString('hex'), sl.writer, sl.entry)
        parts.push({ kind: part[at] as PartKind, name: part.subarray(at + 1), slots })
      }
      const want = renderKey(rec.slots, parts)
      const row = view.getRow(key)
      const got = row === undefined ? null : await readRow(view, key, row)
      if (want === null ? got !== null : got === null || Buffer.compare(want, got) !== 0) problem(`key ${key.toString('hex').slice(0, 40)}: reads as another value than its slots make`)
      // the head: the newest field and tag among the parts (what format-1 entries say of a part is
      // in its row), the newest tag format-1 entries list as removed, and the register's version
      let field: Version | null = null
      let tag: Version | null = rec.slots.some((x) => isState(x)) ? removedTag(legacyState(rec.slots)) : null
      for (const p of parts) {
        if (p.kind === FIELD_NS) field = maxVersion(field, mergeField(p.slots))
        else tag = maxVersion(tag, newestTag(mergeMember(p.slots)))
      }
      const head = rec.head
      const fine = head === null
        ? parts.length === 0 && tag === null
        : sameVersion(head.field, field) && sameVersion(head.tag, tag) && sameVersion(head.reset, registerOf(rec.slots))
      if (!fine) problem(`key ${key.toString('hex').slice(0, 40)}: its head does not match its parts`)
    } catch (err) {
      problem(`key ${key.toString('hex').slice(0, 40)}: its parts do not decode (${(err as Error).message})`)
    }
  }
  // Every key the logs hold entries for reads as those entries make it. The view may lack some of
  // them: a tombstone compaction dropped (lib/stability.ts) takes its slots along, and a key
  // written again after it lacks the slots the tombstone outdated. Those entries, merged alone,
  // read as absent (they decide nothing any more); a slot lost otherwise does not.
  for (const [kid, k] of byKey) {
    const key = Buffer.from(kid, 'hex')
    const want = renderKey(k.whole, k.parts.values())
    const row = view.getRow(key)
    const got = row === undefined ? null : await readRow(view, key, row)
    if (want === null ? got !== null : got === null || Buffer.compare(want, got) !== 0) problem(`key ${kid.slice(0, 40)}: reads as another value than the logs' entries make`)
    const lacks = (rowId: string) => (sl: EntrySlot): boolean => !held.has(rowId + '/' + Buffer.from(sl.writer).toString('hex'))
    const whole = k.whole.filter(lacks('k' + kid))
    const parts = [...k.parts].map(([pid, p]) => ({ ...p, slots: p.slots.filter(lacks(pid)) })).filter((p) => p.slots.length > 0)
    if ((whole.length > 0 || parts.length > 0) && renderKey(whole, parts) !== null) {
      problem(`key ${kid.slice(0, 40)}: the view lacks entries of it that still count`)
    }
  }
  for (const id of seen.keys()) if (!expected.has(id)) problem(`writer ${id.slice(0, 8)} has slots in the view but no checkpoint`)
  for await (const key of view.values.keys()) {
    if (!keyed.has(key.toString('hex'))) problem(`key ${key.toString('hex').slice(0, 40)}: a value with no entries behind it`)
  }

  // 3. the rows and items against the digest
  const digest = await recomputeDigest(view)
  if (digest !== s.digest) problem('the view digest does not match its rows')

  return { ok: problems.length === 0, keys, entries, problems }
}
