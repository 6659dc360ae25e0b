/**
 * What the chaos runners (in-process and multi-process) wait for and check.
 *
 * - {@link waitFor}: a condition re-checked whenever a peer's view updates or one of its logs
 *   grows (append/download), with a slow re-check as a safety net — never a fixed sleep.
 * - {@link inSync}: a group of linked peers has nothing left to exchange or fold.
 * - {@link finalChecks}: after the final full sync, every view is byte-identical, equals the
 *   reference model computed from the logs (model.ts), every peer's writers() agree, and
 *   every acknowledged write is in its writer's log.
 * - {@link finalEntriesCheck} (encrypted databases): after one more write by every live writer,
 *   no other peer holds the key of any of those entries, and every live writer reads them all.
 * - {@link stabilityRound}: every live writer compacts, the group syncs; no peer that reads
 *   everything holds a tombstone the stability records let it drop, and once every live writer
 *   has recorded past everything, none; nothing any key reads as changed.
 *
 * Compaction clears log blocks (lib/compaction.ts): a peer holds a log "whole" when every block
 * it lacks is one it cleared itself (below its `clearedTo`) or one no peer it is linked to holds
 * (cleared everywhere). {@link inSync} and the final checks hold peers to that; an acknowledged
 * write whose blocks its writer cleared since is checked when it is acknowledged.
 *
 * In an encrypted database only the live writers at the end (members, not removed) are expected
 * to read and fold everything; the other peers (never added, or removed) must hold every member
 * log whole, log nothing, and agree on membership (stored clear), but their folds may stop at
 * blocks sealed under epochs they were never given. {@link inSync} waits on holdings and on each
 * peer's fold having nothing more to do, never on folded lengths, so it holds for them too.
 */
import { decode as unpack } from '@msgpack/msgpack'
import type { EventEmitter } from 'node:events'
import type Hypercore from 'hypercore'
import type { MeshDB } from '../../index.js'
import { CUTS_KEY, decodeCuts, ADD_WRITER, DEL, FIELD, FIELD_NS, MEMBER, MEMBER_NS, PRINCIPAL_KEY, PUT, REMOVE_WRITER, STATE, dataKey, decodeEntry, epochKey, grantKey, membershipKey, partBeeKey } from '../../lib/entry.js'
import { epochIdOf, isNoReadKey } from '../../lib/crypt.js'
import { seqBytes } from '../../lib/view.js'
import type { ChaosOp } from './schedule.js'
import { canonical, logsOf, membership, reference, type MemberModel, type Reference } from './model.js'

type DB = MeshDB<any, any>
type Bytes = Buffer
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export class ChaosFailure extends Error {}

export function fail (msg: string): never {
  throw new ChaosFailure(msg)
}

/**
 * Resolves once `check` holds. Re-checks after every 'update' of the given peers and every
 * 'append'/'download' of any log they hold (listeners are attached as logs appear), and at least
 * every 100 ms; rejects after `timeout` ms with `describe()`.
 */
export async function waitFor (dbs: () => DB[], check: () => Promise<boolean>, describe: () => Promise<string> | string, timeout = 30_000): Promise<void> {
  let wake: () => void = () => {}
  const onEvent = (): void => wake()
  const attached = new Set<EventEmitter>()
  const attach = (): void => {
    for (const db of dbs()) {
      if (!attached.has(db)) {
        db.on('update', onEvent)
        attached.add(db)
      }
      if (db.status !== 'open') continue
      for (const w of db.engine.writers.values()) {
        const core = w.core as unknown as EventEmitter
        if (attached.has(core)) continue
        core.on('append', onEvent)
        core.on('download', onEvent)
        attached.add(core)
      }
    }
  }
  const deadline = Date.now() + timeout
  try {
    while (true) {
      const woke = new Promise<void>((resolve) => { wake = resolve })
      attach()
      if (await check()) return
      if (Date.now() > deadline) throw new ChaosFailure(`timed out after ${timeout} ms: ${await describe()}`)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([woke, new Promise<void>((resolve) => { timer = setTimeout(resolve, 100) })])
      clearTimeout(timer)
    }
  } finally {
    for (const e of attached) {
      e.off('update', onEvent)
      e.off('append', onEvent)
      e.off('download', onEvent)
    }
  }
}

/** A Hypercore's bitfield (internal): which blocks it holds. */
interface Bits { get: (i: number) => boolean }

function bitsOf (core: Hypercore): Bits | null {
  return (core as unknown as { core?: { bitfield?: Bits } }).core?.bitfield ?? null
}

/** Whether a peer holds block `i` of a log (locally). */
export function hasBlock (core: Hypercore, i: number): boolean {
  const bits = bitsOf(core)
  if (bits === null) throw new ChaosFailure('a log without a bitfield')
  return bits.get(i)
}

/** The blocks of a log below its length a peer lacks, as [start, end) runs. */
export function missingRuns (core: Hypercore): Array<[number, number]> {
  const out: Array<[number, number]> = []
  const length = core.length
  for (let i = core.contiguousLength; i < length; i++) {
    if (hasBlock(core, i)) continue
    const last = out[out.length - 1]
    if (last !== undefined && last[1] === i) last[1] = i + 1
    else out.push([i, i + 1])
  }
  return out
}

/** What a peer holds of one member log: [key, cut, removed, length, where it cleared to, the blocks it lacks]. */
export type Holding = [string, number, boolean, number, number, Array<[number, number]>]

/**
 * A peer's state as the sync check compares it: its members (cut, removal) and what it holds of
 * each member's log (see {@link agree}). Other logs it may hold (logs that were members in a
 * partial view) do not count: they cannot change its view.
 */
export function holdings (db: DB): Holding[] {
  return membersOf(db).map(([id, m]): Holding => {
    const w = db.engine.writers.get(id)
    return w === undefined ? [id, m.cut, m.removed, -1, 0, []] : [id, m.cut, m.removed, w.core.length, w.clearedTo, missingRuns(w.core)]
  })
}

/** Whether the runs cover [a, b) wholly. */
function covered (runs: Array<[number, number]>, a: number, b: number): boolean {
  let at = a
  for (const [x, y] of runs) {
    if (y <= at) continue
    if (x > at) return false
    at = y
    if (at >= b) return true
  }
  return at >= b
}

/** Which peers of a group are linked to each other (by their indexes in the group): by default all. */
export type Linked = (i: number, j: number) => boolean

/**
 * Whether linked peers hold the same: the same members with the same cuts and log lengths, and
 * each block a peer lacks (not one it cleared itself) lacking on every peer it is linked to too:
 * nothing is left for them to exchange. (A peer only sends blocks it holds: a block cleared by the
 * one peer between two others does not pass.) Null when they agree, or why not.
 */
export function agree (all: Holding[][], names: string[] = all.map((_, i) => `peer ${i}`), linked: Linked = () => true): string | null {
  const first = all[0]
  if (first === undefined) return null
  const shape = (h: Holding[]): string => JSON.stringify(h.map((x) => x.slice(0, 4)))
  for (const [i, h] of all.entries()) if (shape(h) !== shape(first)) return `${names[i] as string} holds ${shape(h)}, ${names[0] as string} ${shape(first)}`
  for (let l = 0; l < first.length; l++) {
    for (const [i, h] of all.entries()) {
      const [id, , , , cleared, missing] = h[l] as Holding
      for (const [a0, b] of missing) {
        const a = Math.max(a0, cleared)
        if (a >= b) continue
        for (const [j, other] of all.entries()) {
          if (j !== i && linked(i, j) && !covered((other[l] as Holding)[5], a, b)) return `${names[i] as string} lacks blocks [${a}, ${b}) of ${id.slice(0, 8)} that ${names[j] as string} holds some of (it cleared below ${cleared})`
        }
      }
    }
  }
  return null
}

/**
 * A peer's members, sorted by key. A peer opened by key alone stays undecided (plain or
 * encrypted: `db.privacy` null) until the creator's first block arrives, and reads no membership
 * until then; while the creator's log is empty everywhere (nothing written yet) there is nothing
 * it could hold, and its members are the creator's alone, as on every other peer.
 */
export function membersOf (db: DB): Array<[string, { cut: number, removed: boolean }]> {
  const creator = hex(db.engine.key)
  if (db.privacy === null && db.engine.members.size === 0 && (db.engine.writers.get(creator)?.core.length ?? 0) === 0) return [[creator, { cut: Infinity, removed: false }]]
  return [...db.engine.members].sort((a, b) => a[0] < b[0] ? -1 : 1)
}

/** What a fold can move: membership read, checkpoints, cuts, and the logs held. */
function progress (db: DB): string {
  return JSON.stringify([
    [...db.engine.writers].map(([id, w]) => [id, w.membershipLength, w.core.contiguousLength]),
    db.writers().map((w) => [w.folded, w.cut, w.member, w.removed])
  ])
}

/**
 * Whether one peer has folded everything it holds: a fold changes nothing more. (A log it knows
 * to be longer than what it holds is fine: when no linked peer holds more, nothing can come.)
 */
export async function settled (db: DB): Promise<boolean> {
  return await settledHoldings(db) !== null
}

/** Records come within this many ms of a fold that makes one due, on a peer opened with a `cutsEvery` this small or smaller. */
export const RECORDS_SOON = 1000

const soon = new WeakSet<DB>()

/**
 * Marks a peer whose stability records come soon after its view read new data (its `cutsEvery`
 * is at most {@link RECORDS_SOON}): it is settled only once it has no record due. (Records follow
 * real time: a record due is appended on a timer, maybe after every other check found it settled.)
 */
export function recordsSoon (db: DB): void {
  soon.add(db)
}

/** As {@link settled}; if it is, what it holds, taken in the same tick as the check. */
export async function settledHoldings (db: DB): Promise<Holding[] | null> {
  await db.update()
  const before = progress(db)
  await db.update()
  if (progress(db) !== before) return null
  // (a peer writing format 1, the test hook, plays an older release: it writes no record)
  if (soon.has(db) && db.status === 'open' && db.writable && db.engine.testHooks.format !== 1 && db.engine.stability.due()) return null
  // a sparse fetch under way (one a fold just started, on a download stalled at blocks no peer
  // holds) folds what it brings once it ends
  if ([...db.engine.catchUps.values()].some((c) => c.fetching)) return null
  return holdings(db)
}

/**
 * Whether a group of linked peers has nothing left to exchange or fold. Each peer's holdings are
 * taken in the same tick as its settled check: data arriving after it was found settled (and
 * not yet folded) then shows up as a difference with the peer that sent it.
 */
export async function inSync (group: DB[], linked?: Linked): Promise<boolean> {
  const seen: Holding[][] = []
  for (const db of group) {
    const h = await settledHoldings(db)
    if (h === null) return false
    seen.push(h)
  }
  // a peer found settled early in the loop may have appended since (a stability record, folding
  // what arrived while the others were checked): what it holds now must be what it held then
  for (const [i, db] of group.entries()) if (JSON.stringify(holdings(db)) !== JSON.stringify(seen[i])) return false
  return agree(seen, undefined, linked) === null
}

/** `Linked` for peers named by index in `group`, from links between peer indexes. */
export function linkedBy (group: number[], links: Iterable<readonly [number, number]>): Linked {
  const set = new Set([...links].map(([a, b]) => `${Math.min(a, b)},${Math.max(a, b)}`))
  return (i, j) => {
    const a = group[i] as number
    const b = group[j] as number
    return set.has(`${Math.min(a, b)},${Math.max(a, b)}`)
  }
}

export function describeGroup (group: DB[], names: string[]): string {
  return group.map((db, i) => {
    if (db.status !== 'open') return `${names[i] ?? i}: ${db.status}`
    const ws = db.writers().map((w) => `${w.key.toString('hex').slice(0, 6)}${w.local ? '*' : ''} len ${w.length}/${db.engine.writers.get(w.key.toString('hex'))?.core.contiguousLength ?? '?'} cut ${w.cut} folded ${w.folded}${w.member ? '' : ' nonmember'}${w.removed ? ' removed' : ''}`)
    return `${names[i] ?? i}: ${ws.join('; ')}`
  }).join('\n  ')
}

/** Every entry of a peer's view, raw, in iteration order. */
export async function dump (db: DB): Promise<Array<[Bytes, Bytes]>> {
  return await db.iterator({ keyEncoding: 'buffer', valueEncoding: 'buffer' }).all() as Array<[Bytes, Bytes]>
}

export function showDump (d: Array<[Bytes, Bytes]>): string {
  return d.map(([k, v]) => `${k.toString()}=${v.toString().slice(0, 100)}`).join(' ')
}

function firstDifference (a: Array<[Bytes, Bytes]>, b: Array<[Bytes, Bytes]>): string | null {
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a[i]
    const y = b[i]
    if (x === undefined || y === undefined || !x[0].equals(y[0]) || !x[1].equals(y[1])) {
      const show = (e: [Bytes, Bytes] | undefined): string => e === undefined ? '(none)' : `${e[0].toString()} = ${e[1].toString().slice(0, 160)}`
      return `entry ${i}: ${show(x)} vs ${show(y)}`
    }
  }
  return null
}

/** An acknowledged write: the op, its writer, and the writer's log length before and after it. */
export interface Ack {
  peer: number
  writer: string
  before: number
  after: number
  op: ChaosOp
  /** For membership ops: the target's writer key (hex). */
  target?: string
  /** The log format the writer wrote it in (absent: 2). */
  format?: 1 | 2
}

/** The data ops of a write, in order (a batch's items as puts and dels). */
function dataOps (op: ChaosOp): ChaosOp[] {
  if (op.kind === 'batch') return op.items.map((i) => i.type === 'put' ? { kind: 'put', key: i.key, value: i.value } : { kind: 'del', key: i.key })
  if (op.kind === 'write') return op.items
  return [op]
}

/**
 * One entry a data op may append: under `beeKey` (hex), by the op at `index` of its write. Format
 * 2: a whole-value write under the key, a patch one per field (in the order `patch` takes them:
 * the object's own key order), a set add or remove one under the member — a remove appends
 * nothing when the writer has no add of the member left to remove (`optional`). Format 1: one
 * STATE (or PUT/DEL) under the key, whatever the op.
 */
interface Producer { index: number, op: ChaosOp, beeKey: string, optional: boolean, field?: string }

function producers (op: ChaosOp, format: 1 | 2): Producer[] {
  const out: Producer[] = []
  dataOps(op).forEach((o, index) => {
    if (!('key' in o)) return
    const key = Buffer.from(o.key)
    if (format === 1 || o.kind === 'put' || o.kind === 'del') {
      out.push({ index, op: o, beeKey: dataKey(key).toString('hex'), optional: false })
    } else if (o.kind === 'patch') {
      const names = Object.keys(Object.fromEntries(o.fields.map((f) => [f[0], true])))
      for (const field of names) out.push({ index, op: o, beeKey: partBeeKey(FIELD_NS, key, Buffer.from(field)).toString('hex'), optional: false, field })
    } else if (o.kind === 'sadd' || o.kind === 'srem') {
      out.push({ index, op: o, beeKey: partBeeKey(MEMBER_NS, key, Buffer.from(canonical(o.member as never))).toString('hex'), optional: o.kind === 'srem' })
    }
  })
  return out
}

/**
 * How many entries a write appends: [least, most]. Membership writes append one or, when they are
 * no-ops, none.
 */
export function entriesOf (op: ChaosOp, format: 1 | 2 = 2): [number, number] {
  if (op.kind === 'add-writer' || op.kind === 'remove-writer') return [0, 1]
  const keys = new Map<string, boolean>()
  for (const p of producers(op, format)) keys.set(p.beeKey, (keys.get(p.beeKey) ?? false) || !p.optional)
  return [[...keys.values()].filter((d) => d).length, keys.size]
}

const sameStamp = (a: { wall: number, counter: number }, b: { wall: number, counter: number }): number =>
  a.wall !== b.wall ? (a.wall < b.wall ? -1 : 1) : a.counter !== b.counter ? (a.counter < b.counter ? -1 : 1) : 0

/** Why entry `e` does not hold what producer `p`'s op wrote, or null when it does. */
function holds (p: Producer, e: ReturnType<typeof decodeEntry>, format: 1 | 2, writer: string): string | null {
  const op = p.op
  const state = (): unknown[] => {
    if (e.type !== STATE) throw new ChaosFailure('not a STATE entry')
    return unpack(e.state) as unknown[]
  }
  switch (op.kind) {
    case 'put':
    case 'del': {
      const value = op.kind === 'put' ? Buffer.from(op.value) : null
      if (e.type === PUT || e.type === DEL) {
        if (value === null ? e.type !== DEL : e.type !== PUT || !Buffer.from(e.value).equals(value)) return `type ${e.type}`
        return null
      }
      // format 1: a whole-value write keeps the writer's entries newer than it: set tags it removed
      // that another writer stamped ahead of its clock. Then the register travels in a STATE entry.
      if (format !== 1 || e.type !== STATE) return `type ${e.type}`
      const reg = state()[1] as unknown[] | null
      const ok = reg !== null && reg[0] === e.stamp.wall && reg[1] === e.stamp.counter &&
        Buffer.from(reg[2] as Uint8Array).toString('hex') === writer &&
        (value === null ? reg[3] === null : reg[3] !== null && Buffer.from(reg[3] as Uint8Array).equals(value))
      return ok ? null : 'the STATE entry does not hold this register'
    }
    case 'patch': {
      if (format === 2) {
        if (e.type !== FIELD) return `type ${e.type}`
        const f = [...op.fields].reverse().find((x) => x[0] === p.field) as [string] | [string, unknown]
        if (f.length === 1 ? e.value !== null : (e.value === null || canonical(e.value[0] as never) !== canonical(f[1] as never))) return `field ${f[0]} = ${JSON.stringify(e.value)}`
        return null
      }
      if (e.type !== STATE) return `type ${e.type}`
      const fields = state()[2] as unknown[][]
      for (const f of op.fields) {
        const got = fields.find((x) => x[0] === f[0])
        if (got === undefined || got[1] !== e.stamp.wall || got[2] !== e.stamp.counter) return `field ${f[0]} not set by this entry`
        const value = got[4] as unknown[] | null
        const last = [...op.fields].reverse().find((x) => x[0] === f[0]) as [string] | [string, unknown]
        if (last.length === 1 ? value !== null : (value === null || canonical(value[0] as never) !== canonical(last[1] as never))) return `field ${f[0]} = ${JSON.stringify(value)}`
      }
      return null
    }
    case 'sadd': {
      if (format === 2) {
        if (e.type !== MEMBER) return `type ${e.type}`
        const own = e.state.adds.get(writer)
        return own !== undefined && sameStamp(own, e.stamp) === 0 ? null : `no add of this entry (stamped ${JSON.stringify(e.stamp)}, its writer's add ${JSON.stringify(own ?? null)})`
      }
      if (e.type !== STATE) return `type ${e.type}`
      const adds = state()[3] as unknown[][]
      return adds.some((x) => x[0] === e.stamp.wall && x[1] === e.stamp.counter && canonical(x[3] as never) === canonical(op.member as never)) ? null : 'no add tag of this entry'
    }
    case 'srem':
      // which adds it removes depends on what the writer had observed; the model judges those
      if (format === 2) {
        if (e.type !== MEMBER) return `type ${e.type}`
        if (e.state.adds.has(writer)) return 'the writer\'s own add survived its remove'
        return e.state.removed.size > 0 ? null : 'a remove that removes nothing'
      }
      return e.type === STATE ? null : `type ${e.type}`
    default:
      return `not a data op: ${op.kind}`
  }
}

/**
 * Why the entries `nodes` (in log order) are not exactly what a data write appended, or null.
 * Each entry is the last of its bee key's writes in the call that appended (a remove may append
 * nothing), the entries go in the order of the ops that wrote them (their stamps strictly grow op
 * by op; a patch's fields share one), and every bee key that a write surely appends is there.
 */
function matchData (op: ChaosOp, nodes: Array<{ key: Buffer, value: Buffer }>, format: 1 | 2, writer: string): string | null {
  const byKey = new Map<string, Producer[]>()
  for (const p of producers(op, format)) {
    let list = byKey.get(p.beeKey)
    if (list === undefined) byKey.set(p.beeKey, list = [])
    list.push(p)
  }
  const seen = new Set<string>()
  let prev: { index: number, stamp: { wall: number, counter: number } } | null = null
  for (const [i, node] of nodes.entries()) {
    const id = node.key.toString('hex')
    const where = `entry ${i} (${node.key.toString('latin1').replace(/[^\x20-\x7e]/g, '.')})`
    if (seen.has(id)) return `${where}: its bee key twice`
    seen.add(id)
    const cands = byKey.get(id)
    if (cands === undefined) return `${where}: a bee key the write does not write`
    let e: ReturnType<typeof decodeEntry>
    try {
      e = decodeEntry(node.value)
    } catch (err) {
      return `${where}: ${(err as Error).message}`
    }
    const lastSure = Math.max(-1, ...cands.filter((c) => !c.optional).map((c) => c.index))
    const reasons: string[] = []
    const pick = cands.find((c) => {
      if (c.index < lastSure) return false
      if (prev !== null) {
        const order = sameStamp(e.stamp, prev.stamp)
        if (order < 0 || (order === 0 && c.index !== prev.index) || (order > 0 && c.index <= prev.index)) {
          reasons.push(`op ${c.index}: out of order`)
          return false
        }
      }
      const why = holds(c, e, format, writer)
      if (why !== null) reasons.push(`op ${c.index}: ${why}`)
      return why === null
    })
    if (pick === undefined) return `${where} holds none of the writes to its key: ${reasons.join('; ') || 'superseded'}`
    prev = { index: pick.index, stamp: e.stamp }
  }
  for (const [id, cands] of byKey) if (!seen.has(id) && cands.some((c) => !c.optional)) return `no entry under ${Buffer.from(id, 'hex').toString('latin1').replace(/[^\x20-\x7e]/g, '.')}`
  return null
}

/** Why the entries `nodes` are not what the write (data or membership) appended, or null. */
export function matchWrite (op: ChaosOp, nodes: Array<{ key: Buffer, value: Buffer }>, format: 1 | 2, writer: string, target?: string): string | null {
  if (op.kind === 'add-writer' || op.kind === 'remove-writer') {
    if (nodes.length > 1) return `${nodes.length} entries`
    const node = nodes[0]
    if (node === undefined) return null
    if (target === undefined) return 'no target'
    if (!node.key.equals(membershipKey(op.kind === 'add-writer' ? ADD_WRITER : REMOVE_WRITER, Buffer.from(target, 'hex')))) return `key ${node.key.toString('hex')}`
    const e = decodeEntry(node.value)
    if (e.type !== (op.kind === 'add-writer' ? ADD_WRITER : REMOVE_WRITER) || hex(e.writer) !== target) return `type ${e.type}`
    return null
  }
  return matchData(op, nodes, format, writer)
}

const GRANT_BYTE = grantKey(Buffer.alloc(8), Buffer.alloc(32))[1]
const EPOCH_BYTE = epochKey(Buffer.alloc(8))[1]

/**
 * Whether a bee key is bookkeeping: an encrypted database's key grant, new epoch's record, or
 * writer's stated public key, or a writer's stability record. A write may append grants before
 * its own entries (a new epoch), and a fold may append grants and records between writes; they
 * are no part of any write.
 */
export function keyBookkeeping (key: Buffer): boolean {
  return key.equals(PRINCIPAL_KEY) || key.equals(CUTS_KEY) || (key.byteLength > 1 && key[0] === PRINCIPAL_KEY[0] && (key[1] === GRANT_BYTE || key[1] === EPOCH_BYTE))
}

/**
 * Entries [start, end) of a log, as nodes, key bookkeeping left out; fails on a missing one.
 * A block sealed under an epoch `db` does not hold fails too, unless `sealed` is given: then it is
 * counted there (its entry cannot be checked, only that it is there). So does a block `db` does
 * not hold, unless `cleared` is given and it lies below where `db` cleared the log: then it is
 * counted there.
 */
export async function entriesAt (db: DB, writer: string, start: number, end: number, where: string, sealed?: { count: number }, cleared?: { count: number }): Promise<Array<{ key: Buffer, value: Buffer }>> {
  const w = db.engine.writers.get(writer)
  if (w === undefined) fail(`${where}: the writer's log is not held`)
  const out: Array<{ key: Buffer, value: Buffer }> = []
  for (let i = start; i < end; i++) {
    let node: { key: Buffer, value: Buffer } | null
    if (i >= w.core.length || !hasBlock(w.core, i)) {
      if (cleared === undefined || i >= w.clearedTo) fail(`${where}: entry ${i} is not held${w.clearedTo > 0 ? ` (the log is cleared below ${w.clearedTo} here)` : ''}`)
      cleared.count++
      continue
    }
    try {
      node = await w.bee.getBySeq(i)
    } catch (err) {
      if (!isNoReadKey(err)) throw err
      if (sealed === undefined) fail(`${where}: entry ${i} is sealed under an epoch this peer does not hold`)
      sealed.count++
      continue
    }
    if (node === null) fail(`${where}: entry ${i} is missing`)
    if (keyBookkeeping(node.key)) continue
    out.push({ key: node.key, value: node.value })
  }
  return out
}

/**
 * Every acknowledged write is in its writer's log, at the indexes it reported, as that op. `dbs`
 * are the peers by index: each write is looked up in its writer's own copy of its log (other
 * peers hold it only if it is a member: a writer that believed itself added, by an add that the
 * replay does not count, holds the only copy), or in `opts.via`'s.
 *
 * Compaction: a write whose blocks that copy lacks is read through a peer that holds them all;
 * if none does, `opts.cleared` is given (else it fails), and every block no copy holds lies below
 * where its writer cleared its own log, the write is only counted there (its entries were
 * checked when it was acknowledged).
 */
export async function checkAcks (dbs: DB[], acks: Ack[], sealedOk: (a: Ack) => boolean = () => false, opts: { via?: DB, cleared?: { count: number } } = {}): Promise<void> {
  for (const a of acks) {
    const where = `ack of peer ${a.peer}'s ${JSON.stringify(a.op).slice(0, 200)} (format ${a.format ?? 2}, log ${a.writer.slice(0, 8)} [${a.before}, ${a.after}))`
    let db = opts.via ?? dbs[a.peer]
    if (db === undefined) fail(`${where}: no such peer`)
    const w = db.engine.writers.get(a.writer)
    if (w === undefined) fail(`${where}: the writer does not hold its own log`)
    if (w.core.length < a.after) fail(`${where}: the log is only ${w.core.length} long`)
    // a log's first write also appends the Hyperbee header (block 0)
    const start = a.before === 0 && a.after > 0 ? 1 : a.before
    const whole = (d: DB): boolean => {
      const core = d.engine.writers.get(a.writer)?.core
      if (core === undefined || core.length < a.after) return false
      for (let i = start; i < a.after; i++) if (!hasBlock(core, i)) return false
      return true
    }
    if (!whole(db)) {
      const other = dbs.find(whole)
      if (other !== undefined) db = other
      else {
        const own = dbs[a.peer]?.engine.writers.get(a.writer)
        const lost: number[] = []
        for (let i = start; i < a.after; i++) if (!dbs.some((d) => { const c = d.engine.writers.get(a.writer)?.core; return c !== undefined && c.length > i && hasBlock(c, i) }) && i >= (own?.clearedTo ?? 0)) lost.push(i)
        if (opts.cleared === undefined || lost.length > 0) fail(`${where}: no peer holds ${lost.length > 0 ? `entries ${lost.join(' ')}, not cleared by its writer (cleared below ${own?.clearedTo ?? 0})` : 'all its entries (compaction cleared some)'}`)
        opts.cleared.count++
        continue
      }
    }
    // a writer that is no live member at the end may have lost the key of an epoch it made while
    // it did not know of its removal (its grants past its cut do not count): those entries are
    // only counted
    const sealed = sealedOk(a) ? { count: 0 } : undefined
    const nodes = await entriesAt(db, a.writer, start, a.after, where, sealed)
    checkAckNodes(a, nodes, sealed?.count ?? 0, where)
  }
}

/**
 * The entries an acknowledged write appended (key bookkeeping left out; `sealed` more that could
 * not be read) are that write.
 */
export function checkAckNodes (a: Ack, nodes: Array<{ key: Buffer, value: Buffer }>, sealed: number, where: string): void {
  const n = nodes.length + sealed
  const [least, most] = entriesOf(a.op, a.format ?? 2)
  if (n < least || n > most) fail(`${where}: ${n} entries appended (key grants aside), expected ${least === most ? least : `${least} to ${most}`}`)
  if (sealed > 0) return
  const why = matchWrite(a.op, nodes, a.format ?? 2, a.writer, a.target)
  if (why !== null) fail(`${where}: the entries do not hold the write: ${why}`)
}

/** The part of writers() every peer must agree on. */
function writersOf (db: DB, members: Set<string>): string {
  return JSON.stringify(db.writers()
    .filter((w) => members.has(w.key.toString('hex')))
    .map((w) => [w.key.toString('hex').slice(0, 12), w.length, w.cut, w.folded, w.member, w.removed]))
}

/** Rejects with a failure saying `what` if `p` takes longer than `ms`. */
export async function bounded<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new ChaosFailure(`${what}: no answer in ${ms} ms`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** What the final checks found: the reference, and which peers it expects to read everything. */
export interface Final extends Reference {
  /**
   * Indexes of the peers expected to read and fold everything: every peer of a plain database;
   * of an encrypted one, the live writers per the model (members, not removed).
   */
  full: number[]
  /** The peer the model read the logs through: a full one (0 when none is). */
  source: number
  /** Acknowledged writes whose entries no peer holds any more (compaction cleared them): only counted. */
  cleared: number
}

/** What the final checks may expect of each peer, by index. */
export interface FinalOptions {
  /** Its `history` option (absent: 'live'): a 'full' one never cleared a block. */
  history?: Array<'full' | 'live' | undefined>
  /** The links between peers (by index) in the final sync: blocks pass along them only. */
  links?: Array<[number, number]>
}

/**
 * A peer opened by key alone that is still undecided (plain or encrypted): the creator's log, its
 * first block tells, is empty (see {@link membersOf}).
 */
function undecided (db: DB): boolean {
  return db.privacy === null && (db.engine.writers.get(hex(db.engine.key))?.core.length ?? 0) === 0
}

/** Whether a writer key is a live writer per the model's members. */
export function liveIn (members: Map<string, MemberModel>, writer: string): boolean {
  const m = members.get(writer)
  return m !== undefined && !m.removed
}

/**
 * The checks after the final full sync. `dbs` are open peers holding the same logs; `names`
 * label them in messages. In an encrypted database the views, digests, folded lengths and acks
 * read through a peer are expected of the live writers only (see the top of the file); every
 * peer must hold every member log whole and agree on membership. Returns the reference (for logs
 * and digests) and which peers are held to everything.
 */
export async function finalChecks (dbs: DB[], names: string[], acks: Ack[], opts: FinalOptions = {}): Promise<Final> {
  const encrypted = dbs.some((db) => db.privacy === 'encrypted')
  let full = dbs.map((_, i) => i)
  if (encrypted) {
    // membership is stored clear: any peer's logs give it; the data only a live writer's keys read
    const { members } = await membership(logsOf(dbs[0] as DB))
    full = full.filter((i) => liveIn(members, hex((dbs[i] as DB).writerKey)))
    for (const [i, db] of dbs.entries()) if (db.privacy !== 'encrypted') fail(`${names[i] as string} is ${String(db.privacy)}, not encrypted: every chaos peer is given the key`)
  }
  const source = full[0] ?? 0
  const src = dbs[source] as DB
  // the logs are held as they must be before the model reads them: a block a tree needs that no
  // peer holds would stall its reads
  const members = await bounded(membership(logsOf(src)), 60_000, 'the model reading membership')
  await checkHoldings(dbs, names, new Set(members.members.keys()), src, opts)
  const ref: Reference = full.length > 0
    ? await bounded(reference(logsOf(src)), 60_000, 'the model reading the logs')
    : { ...members, view: [], why: new Map(), bad: 0 }
  const expected = ref.view
  for (const i of full) {
    const db = dbs[i] as DB
    const name = names[i] as string
    const mine = await dump(db)
    const diff = firstDifference(mine, expected)
    if (diff !== null) {
      const keys = [...ref.why].map(([k, w]) => `${k}: ${w}`).join('; ')
      fail(`${name}'s view differs from the reference model at ${diff}\n  view:  ${showDump(mine)}\n  model: ${showDump(expected)}\n  rules: ${keys}\n  ${describeGroup(dbs, names)}\n  ${name} holds: ${JSON.stringify(holdings(db))}`)
    }
    if (!db.hash().equals(src.hash())) fail(`${name}'s view digest differs from ${names[source] as string}'s`)
  }
  if (ref.bad !== 0) fail(`the model skipped ${ref.bad} bad entries; honest writers wrote none`)
  for (let i = 0; i < dbs.length; i++) {
    const stats = (dbs[i] as DB).stats()
    if (stats.badEntries !== 0) fail(`${names[i] as string} skipped ${stats.badEntries} bad entries; honest writers wrote none`)
  }
  // writers(): the same logs, lengths, cuts, folded lengths and removals everywhere, as the model says
  const ids = new Set(ref.members.keys())
  const agreed = writersOf(src, ids)
  for (const i of full) {
    if (undecided(dbs[i] as DB)) continue // checked below
    const mine = writersOf(dbs[i] as DB, ids)
    if (mine !== agreed) fail(`writers() differ: ${names[source] as string} ${agreed} vs ${names[i] as string} ${mine}`)
  }
  for (let i = 0; i < dbs.length; i++) {
    const db = dbs[i] as DB
    const name = names[i] as string
    if (undecided(db)) {
      // nothing was ever written: it holds the creator's empty log (and its own), and knows no member yet
      const ws = db.writers().map((w) => [w.key.toString('hex'), w.length] as const)
      const ok = ws.every(([k, n]) => n === 0 && (k === hex(db.engine.key) || k === hex(db.writerKey))) && ws.some(([k]) => k === hex(db.engine.key))
      if (!ok || ref.view.length !== 0 || db.writable) fail(`${name} is undecided (plain or encrypted) but holds ${JSON.stringify(ws)}${db.writable ? ', writable' : ''}`)
      continue
    }
    for (const w of db.writers()) {
      const id = w.key.toString('hex')
      const m = ref.members.get(id)
      const cut = m === undefined ? 0 : m.removed ? m.cut : w.length
      if (w.member !== (m !== undefined) || w.removed !== (m?.removed ?? false) || w.cut !== cut) {
        fail(`${name}: writer ${id.slice(0, 8)} is ${JSON.stringify({ member: w.member, removed: w.removed, cut: w.cut })}, the model says ${JSON.stringify({ member: m !== undefined, removed: m?.removed ?? false, cut })}`)
      }
    }
    for (const id of ids) {
      if (!db.writers().some((w) => w.key.toString('hex') === id)) fail(`${name} does not hold member log ${id.slice(0, 8)}`)
    }
    const own = ref.members.get(hex(db.writerKey))
    if (db.writable !== (own !== undefined && !own.removed)) fail(`${name}: writable is ${String(db.writable)}, the model says ${String(!db.writable)}`)
  }
  // a writer that is no live member may no longer read its own entries written past its cut
  const sealedOk = (a: Ack): boolean => encrypted && !liveIn(ref.members, a.writer)
  const cleared = { count: 0 }
  await checkAcks(dbs, acks, sealedOk, { cleared })
  // a member's log is the same on every peer (signed): its acknowledged writes are everywhere,
  // and a live writer reads every one of them up to the writer's cut
  if (full.length > 0) {
    for (const a of acks) {
      const m = ref.members.get(a.writer)
      if (m === undefined || (encrypted && m.removed && a.after > m.cut)) continue
      await checkAcks(dbs, [a], () => false, { via: src, cleared: { count: 0 } })
    }
  }
  return { ...ref, full, source, cleared: cleared.count }
}

/**
 * Every peer holds every member log (`ids`) as long as `src` does, and whole, whether it reads
 * it or not — but for the blocks compaction cleared: each lacks only blocks it cleared itself
 * (below its `clearedTo`) and blocks no peer it is linked to holds (see {@link agree}); those
 * only their writer may have cleared (its own copy lacks nothing past where it cleared it); a
 * peer keeping full history cleared nothing.
 */
async function checkHoldings (dbs: DB[], names: string[], ids: Set<string>, src: DB, opts: FinalOptions): Promise<void> {
  const decided = dbs.flatMap((db, i) => undecided(db) ? [] : [i])
  for (const i of decided) {
    const db = dbs[i] as DB
    for (const id of ids) {
      const core = db.engine.writers.get(id)?.core
      const length = src.engine.writers.get(id)?.core.length ?? -1
      if (core === undefined || core.length !== length) {
        // what the longer copy holds past the shorter one (bee keys)
        const [long, short] = (core?.length ?? 0) > length ? [db, length] : [src, core?.length ?? 0]
        const w = long.engine.writers.get(id)
        const past: string[] = []
        for (let b = Math.max(short, 1); w !== undefined && b < w.core.length && past.length < 8; b++) {
          const node = await w.bee.getBySeq(b, { wait: false } as never).catch(() => null)
          past.push(node === null ? '?' : node.key.toString('latin1').replace(/[^\x20-\x7e]/g, '.').slice(0, 20))
        }
        fail(`${names[i] as string} holds member log ${id.slice(0, 8)} ${core === undefined ? 'not at all' : `${core.length} long`}, the model's source ${length} (past the shorter: ${past.join(' ')})`)
      }
    }
  }
  const why = agree(decided.map((i) => holdings(dbs[i] as DB).filter(([id]) => ids.has(id))), decided.map((i) => names[i] as string), opts.links === undefined ? undefined : linkedBy(decided, opts.links))
  if (why !== null) fail(`the member logs are not held whole: ${why}`)
  for (const i of decided) {
    const db = dbs[i] as DB
    const name = names[i] as string
    const own = db.engine.writers.get(hex(db.writerKey))
    if (own !== undefined && ids.has(own.id)) {
      const lost = missingRuns(own.core).filter(([, b]) => b > own.clearedTo)
      if (lost.length > 0) fail(`${name} lacks blocks ${JSON.stringify(lost)} of its own log, which it cleared only below ${own.clearedTo}`)
    }
    if (opts.history?.[i] === 'full') {
      const cleared = [...db.engine.writers.values()].filter((w) => w.clearedTo > 0).map((w) => `${w.id.slice(0, 8)} below ${w.clearedTo}`)
      if (cleared.length > 0 || db.stats().blocksCleared > 0) fail(`${name} keeps full history, yet cleared ${db.stats().blocksCleared} blocks: ${cleared.join(', ')}`)
    }
  }
}

/**
 * Encrypted databases, after the final checks: every live writer (`full`) writes one more entry
 * (a put of a fresh key), the group syncs (`sync`); then no other peer holds the epoch any of
 * those entries is sealed under, and every live writer reads them all. A removal ends reading of
 * what is written after it.
 *
 * One exception, by construction of the chaos runs: every peer was handed the creator's key by
 * hand (`encryptionKey`), which no log records. While no counted grant names a peer (as the
 * recipient or the author of a grant of that epoch), nothing tells the members it holds that key,
 * so they may write under it still: that epoch is not held against such a peer. Returns a line
 * for the trace (the same in every replay) and how often that exception applied (it depends on
 * which clean epoch a writer picks, the greatest id: a random key's).
 */
export async function finalEntriesCheck (dbs: DB[], names: string[], full: number[], sync: () => Promise<void>, clockAhead?: number): Promise<{ line: string, handed: number }> {
  const written: Array<{ peer: number, writer: string, before: number, after: number, key: string, value: string }> = []
  for (const i of full) {
    const db = dbs[i] as DB
    const own = db.engine.own.core
    const before = own.length
    const key = `zz-final-${names[i] as string}`
    const value = `after the final sync, by ${names[i] as string}`
    try {
      await db.put(key, value)
    } catch (err) {
      // the peer whose clock ran a day ahead may be refused until the others' clocks catch up
      if (i === clockAhead && (err as { code?: string }).code === 'MESHBEE_CLOCK_AHEAD') continue
      throw err
    }
    written.push({ peer: i, writer: hex(db.writerKey), before, after: own.length, key, value })
  }
  await sync()
  const epochs = new Map<string, string[]>()
  for (const w of written) {
    const core = (dbs[w.peer] as DB).engine.own.core
    let sealed = 0
    for (let b = w.before; b < w.after; b++) {
      const raw = await core.get(b, { wait: false, raw: true } as never) as Uint8Array | null
      if (raw === null) fail(`${names[w.peer] as string}'s final entry: block ${b} of its own log is missing`)
      if (raw[0] !== 1) continue // a clear membership block (key grants of a new epoch)
      sealed++
      const id = Buffer.from(raw.subarray(8, 16)).toString('hex')
      epochs.set(id, [...(epochs.get(id) ?? []), `${names[w.peer] as string}@${b}`])
    }
    if (sealed === 0) fail(`${names[w.peer] as string}'s final entry [${w.before}, ${w.after}) is not sealed`)
  }
  const src = dbs[full[0] as number] as DB
  const table = src.engine.privacy.epochs.table
  let byHand = 0
  for (let i = 0; i < dbs.length; i++) {
    if (full.includes(i)) continue
    const db = dbs[i] as DB
    const me = hex(db.writerKey)
    const handed = db.encryptionKey === null ? null : epochIdOf(db.encryptionKey).toString('hex')
    for (const w of written) {
      const core = db.engine.writers.get(w.writer)?.core
      if (core === undefined || core.contiguousLength < w.after) fail(`${names[i] as string} does not hold ${names[w.peer] as string}'s final entry (${String(core?.contiguousLength)} of ${w.after} blocks)`)
    }
    for (const [id, where] of epochs) {
      if (!db.engine.privacy.keyring.has(id)) continue
      const t = table.get(id)
      if (id === handed && t !== undefined && !t.recipients.has(me) && !t.authors.has(me)) {
        byHand++
        continue
      }
      fail(`${names[i] as string}, no live writer, holds epoch ${id} of the final entries at ${where.join(' ')} (its grants: authors ${[...(t?.authors ?? [])].map((x) => x.slice(0, 8)).join(',')}, recipients ${[...(t?.recipients ?? [])].map((x) => x.slice(0, 8)).join(',')}; it is ${me.slice(0, 8)})`)
    }
  }
  if (written.length === 0) return { line: 'final entries: none written (every live writer refused)', handed: 0 }
  for (const i of full) {
    const db = dbs[i] as DB
    for (const id of epochs.keys()) if (!db.engine.privacy.keyring.has(id)) fail(`${names[i] as string}, a live writer, does not hold epoch ${id} of the final entries at ${(epochs.get(id) as string[]).join(' ')}`)
    for (const w of written) {
      const got = await db.get(w.key) as unknown
      if (got !== w.value) fail(`${names[i] as string}, a live writer, reads ${JSON.stringify(got)} for ${names[w.peer] as string}'s final entry ${w.key}`)
    }
  }
  const others = dbs.length - full.length
  return { line: `final entries: ${written.length} by the live writers, read by all of them; none under an epoch granted to the ${others} other peer(s)`, handed: byHand }
}

/** A writer's stability record: its clock when it appended it, and how far it had folded each log. */
interface Record { at: { wall: number, counter: number } | null, cuts: Map<string, number> }

/** A writer's latest stability record, read from its log as `db` holds it (null: none). */
async function recordOf (db: DB, writer: string): Promise<Record | null> {
  const w = db.engine.writers.get(writer)
  if (w === undefined || w.core.length <= 1) return null
  const snap = w.bee.checkout(w.core.length)
  try {
    const node = await snap.get(CUTS_KEY, { wait: false })
    if (node === null) return null
    const e = decodeCuts(node.key, node.value) as ReturnType<typeof decodeCuts> & { at?: { wall: number, counter: number } }
    return { at: e.at ?? null, cuts: new Map(e.vector.map(([k, n]) => [hex(k), n])) }
  } finally {
    await snap.close()
  }
}

/**
 * What the live writers' latest records (read from the logs as `src` holds them) let a peer drop
 * (lib/stability.ts): the stable frontier, for each log the least length every record says was
 * folded (0 for a writer with no record), and the earliest of their clocks (null if one has none).
 */
async function stableOf (src: DB, live: string[]): Promise<{ frontier: Map<string, number>, clock: { wall: number, counter: number } | null }> {
  const records = await Promise.all(live.map(async (x) => await recordOf(src, x)))
  const frontier = new Map<string, number>()
  for (const id of src.engine.writers.keys()) frontier.set(id, Math.min(...records.map((r) => r?.cuts.get(id) ?? 0)))
  let clock: { wall: number, counter: number } | null = null
  for (const r of records) {
    if (r === null || r.at === null) return { frontier, clock: null }
    if (clock === null || r.at.wall < clock.wall || (r.at.wall === clock.wall && r.at.counter < clock.counter)) clock = r.at
  }
  return { frontier, clock }
}

/** One tombstone generation of a view (lib/view.ts `deaths`): its newest stamp, how far it read each log, and its keys. */
interface Generation { gen: number, stamp: { wall: number, counter: number } | null, vector: Array<[string, number]>, keys: number }

/** The tombstone generations a peer's view holds, in order (lib/view.ts `graves`, `graveq`, `deaths`). */
async function tombstonesOf (db: DB): Promise<Generation[]> {
  const view = db.engine.view
  const out: Generation[] = []
  for await (const [genKey, raw] of view.scan('deaths', Buffer.alloc(0))) {
    const gen = Number(genKey.readBigUInt64BE(0))
    let keys = 0
    for await (const _ of view.scan('graveq', seqBytes(gen))) keys++ // eslint-disable-line @typescript-eslint/no-unused-vars
    const v = unpack(raw) as unknown[]
    // [[wall, counter], vector], or (an earlier layout) the vector alone
    const stamped = Array.isArray(v[0]) && typeof (v[0] as unknown[])[0] === 'number'
    const [stamp, vector] = stamped ? [{ wall: (v[0] as number[])[0] as number, counter: (v[0] as number[])[1] as number }, v[1] as Array<[Uint8Array, number]>] : [null, v as Array<[Uint8Array, number]>]
    out.push({ gen, stamp, vector: vector.map(([w, n]) => [hex(w), n]), keys })
  }
  return out
}

/**
 * After the final checks (every peer linked, everything folded): stability and tombstone
 * collection, in two rounds.
 *
 * Round one: every live writer compacts and the group syncs. For every peer that reads everything
 * (`ref.full`): `stats().tombstones` counts the tombstones its generations hold, and it holds none
 * of a generation the live writers' latest records (read here from the logs) let it drop: one
 * whose lengths each record covers (a removed member's only up to its cut), with the earliest of
 * their clocks past its newest stamp (lib/stability.ts). That is all that must hold. Which
 * tombstones a peer holds is no function of the logs: each generation records how far that
 * peer's view had read each log's data when it was made; a writer records only when its view read
 * data past its last record, so a peer that folded a log's data and the record after it in one
 * step may keep a tombstone no record will cover until new data comes; and a writer's clock may
 * run behind a stamp it folded (it follows a stamp ahead of its wall clock only up to maxDrift).
 * Tombstone counts may then differ between peers, and are not compared.
 *
 * Round two makes every live writer record past everything: each writes once (a put of a fresh
 * key `zz-stable-…`), the group syncs, each compacts (its view read the others' new data: it
 * records), the group syncs. Now every live writer's record must cover the logs' lengths before
 * the rounds (unless a writer was refused its write: the one whose clock runs a day ahead), and
 * the rule above holds again: a peer may hold a tombstone then only behind a clock. Through both
 * rounds every such peer reads as the model computed from the logs, with the same digest:
 * compaction changes nothing any key reads as; a peer keeping full history clears nothing.
 * Returns a line for the trace and the tombstones held after round one (on every peer that reads
 * everything).
 */
export async function stabilityRound (dbs: DB[], names: string[], ref: Final, sync: () => Promise<void>, opts: FinalOptions & { clockAhead?: number } = {}): Promise<{ line: string, held: number }> {
  const liveIdx = dbs.flatMap((db, i) => !undecided(db) && liveIn(ref.members, hex(db.writerKey)) ? [i] : [])
  if (liveIdx.length === 0) return { line: 'stability: no live writer', held: 0 }
  const live = liveIdx.map((i) => hex((dbs[i] as DB).writerKey))
  const src = dbs[ref.source] as DB
  const lengths = new Map<string, number>()
  for (const [id, m] of ref.members) lengths.set(id, Math.min(m.cut, src.engine.writers.get(id)?.core.length ?? 0))
  const compactAll = async (): Promise<void> => {
    for (const i of liveIdx) {
      const db = dbs[i] as DB
      const r = await db.compact()
      if (r.tombstones !== db.stats().tombstones) fail(`${names[i] as string}'s compact() says ${r.tombstones} tombstones are left, stats() ${db.stats().tombstones}`)
      if (opts.history?.[i] === 'full' && r.blocksCleared > 0) fail(`${names[i] as string} keeps full history, yet compact() cleared ${r.blocksCleared} blocks`)
    }
    await sync()
  }
  /** Every peer that reads everything reads as the model from the logs, with one digest. */
  const sameAsModel = async (when: string): Promise<void> => {
    if (ref.full.length === 0) return
    const model = await bounded(reference(logsOf(src)), 60_000, 'the model reading the logs')
    for (const i of ref.full) {
      const diff = firstDifference(await dump(dbs[i] as DB), model.view)
      if (diff !== null) fail(`${names[i] as string}'s view differs from the model ${when}, at ${diff}\n  ${describeGroup(dbs, names)}\n  ${names[i] as string} holds: ${JSON.stringify(holdings(dbs[i] as DB))}`)
      if (!(dbs[i] as DB).hash().equals(src.hash())) fail(`${names[i] as string}'s view digest differs from ${names[ref.source] as string}'s ${when}`)
    }
  }
  const need = (w: string, n: number): number => {
    const m = ref.members.get(w)
    return m !== undefined && m.removed ? Math.min(n, m.cut) : n
  }
  /** The rule of round one (see above), on every peer that reads everything; the tombstones each holds, and how many only behind a clock. */
  const collectedAll = async (when: string): Promise<{ held: number[], clocked: number }> => {
    const { frontier, clock } = await stableOf(src, live)
    const held: number[] = []
    let clocked = 0
    for (const i of ref.full) {
      const db = dbs[i] as DB
      const gens = await tombstonesOf(db)
      const n = gens.reduce((a, g) => a + g.keys, 0)
      if (n !== db.stats().tombstones) fail(`${names[i] as string}'s stats() counts ${db.stats().tombstones} tombstones, its generations hold ${n} ${when}`)
      const oldest = gens.find((g) => g.keys > 0)
      // (a peer still writing format 1 plays an older release: it drops nothing)
      if (oldest !== undefined && db.engine.testHooks.format !== 1) {
        const read = oldest.vector.every(([w, len]) => (frontier.get(w) ?? 0) >= need(w, len))
        const past = oldest.stamp === null || (clock !== null && (clock.wall > oldest.stamp.wall || (clock.wall === oldest.stamp.wall && clock.counter >= oldest.stamp.counter)))
        if (read && past) {
          fail(`${names[i] as string} holds ${oldest.keys} tombstone(s) of generation ${oldest.gen} ${when}, though every live writer's record covers what it read then ` +
            `(${JSON.stringify(oldest.vector.map(([w, len]) => [w.slice(0, 8), len, frontier.get(w) ?? 0]))}) with its clock past its newest stamp (${JSON.stringify(oldest.stamp)}, the records' ${JSON.stringify(clock)})`)
        }
        if (read) clocked += n
      }
      held.push(n)
    }
    return { held, clocked }
  }

  await compactAll()
  await sameAsModel('after every live writer compacted')
  const one = await collectedAll('after every live writer compacted')

  const refused: string[] = []
  for (const i of liveIdx) {
    const db = dbs[i] as DB
    try {
      await db.put(`zz-stable-${names[i] as string}`, `a write after the final sync, by ${names[i] as string}`)
    } catch (err) {
      // the peer whose clock ran a day ahead may be refused until the others' clocks catch up
      if (i !== opts.clockAhead || (err as { code?: string }).code !== 'MESHBEE_CLOCK_AHEAD') throw err
      refused.push(names[i] as string)
    }
  }
  await sync()
  await compactAll()
  await sameAsModel('after every live writer wrote and compacted')
  const two = await collectedAll('after every live writer wrote and compacted')
  const { frontier } = await stableOf(src, live)
  const short = [...lengths].filter(([id, len]) => len > 1 && (frontier.get(id) ?? 0) < need(id, len))
  // (a live writer still writing format 1 plays an older release: it records nothing)
  const older = liveIdx.some((i) => (dbs[i] as DB).engine.testHooks.format === 1)
  if (short.length > 0 && refused.length === 0 && !older) {
    fail(`every live writer wrote and compacted after the final sync, yet the records cover ${short.map(([id, len]) => `${id.slice(0, 8)}'s log to ${frontier.get(id) ?? 0} of ${len}`).join(', ')}`)
  }
  const collected = ref.full.reduce((n, i) => n + (dbs[i] as DB).stats().tombstonesCollected, 0)
  return {
    line: `stability: after one round tombstones held [${one.held.join(' ')}]; after a write and a compaction by every live writer held [${two.held.join(' ')}]` +
      `${two.clocked > 0 ? ` (${two.clocked} behind a clock)` : ''}${short.length > 0 ? ` (records short: ${refused.join(' ')} refused)` : ''}; ${collected} collected in all`,
    held: one.held.reduce((a, b) => a + b, 0)
  }
}

/**
 * Whether `to` holds every member log at least as far as `from` does: as long, and lacking no
 * block `from` holds (but those `to` cleared itself).
 */
export function holdsAll (from: Holding[], to: Holding[]): boolean {
  const theirs = new Map(to.map((h) => [h[0], h]))
  for (const [id, , , length, , missing] of from) {
    const t = theirs.get(id)
    if (t === undefined || t[3] < length) return false
    for (const [a0, b0] of t[5]) {
      const a = Math.max(a0, t[4])
      const b = Math.min(b0, length)
      if (a < b && !covered(missing, a, b)) return false
    }
  }
  return true
}
