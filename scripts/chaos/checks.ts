/**
 * What the chaos runners (in-process and multi-process) wait for and check.
 *
 * - {@link waitFor}: a condition re-checked whenever a peer's view updates or one of its logs
 *   grows (append/download), with a slow re-check as a safety net — never a fixed sleep.
 * - {@link inSync}: a group of linked peers has nothing left to exchange or fold.
 * - {@link finalChecks}: after the final full sync, every view is byte-identical, equals the
 *   reference model computed from the logs (model.ts), every peer's writers() agree, and
 *   every acknowledged write is in its writer's log.
 */
import { decode as unpack } from '@msgpack/msgpack'
import type { EventEmitter } from 'node:events'
import type { MeshDB } from '../../index.js'
import { ADD_WRITER, DEL, FIELD, FIELD_NS, MEMBER, MEMBER_NS, PUT, REMOVE_WRITER, STATE, dataKey, decodeEntry, membershipKey, partBeeKey } from '../../lib/entry.js'
import type { ChaosOp } from './schedule.js'
import { canonical, logsOf, reference, type Reference } from './model.js'

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

/**
 * A peer's state as the sync check compares it: its members (cut, removal) and how much of each
 * member's log it holds. Other logs it may hold (logs that were members in a partial view) do
 * not count: they cannot change its view.
 */
function holdings (db: DB): string {
  return JSON.stringify([...db.engine.members].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([id, m]) =>
    [id, m.cut, m.removed, db.engine.writers.get(id)?.core.contiguousLength ?? -1]))
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

/** As {@link settled}; if it is, what it holds, taken in the same tick as the check. */
async function settledHoldings (db: DB): Promise<string | null> {
  await db.update()
  const before = progress(db)
  await db.update()
  return progress(db) === before ? holdings(db) : null
}

/**
 * Whether a group of linked peers has nothing left to exchange or fold. Each peer's holdings are
 * taken in the same tick as its settled check: data arriving after it was found settled (and
 * not yet folded) then shows up as a difference with the peer that sent it.
 */
export async function inSync (group: DB[]): Promise<boolean> {
  const seen: string[] = []
  for (const db of group) {
    const h = await settledHoldings(db)
    if (h === null) return false
    seen.push(h)
  }
  return seen.every((h) => h === seen[0])
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
        return own !== undefined && sameStamp(own, e.stamp) === 0 ? null : 'no add of this entry'
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

/** Entries [start, end) of a log, as nodes; fails on a missing one. */
export async function entriesAt (db: DB, writer: string, start: number, end: number, where: string): Promise<Array<{ key: Buffer, value: Buffer }>> {
  const w = db.engine.writers.get(writer)
  if (w === undefined) fail(`${where}: the writer's log is not held`)
  const out: Array<{ key: Buffer, value: Buffer }> = []
  for (let i = start; i < end; i++) {
    const node = await w.bee.getBySeq(i)
    if (node === null) fail(`${where}: entry ${i} is missing`)
    out.push({ key: node.key, value: node.value })
  }
  return out
}

/**
 * Every acknowledged write is in its writer's log, at the indexes it reported, as that op. `dbs`
 * are the peers by index: each write is looked up in its writer's own copy of its log (other
 * peers hold it only if it is a member: a writer that believed itself added, by an add that the
 * replay does not count, holds the only copy).
 */
export async function checkAcks (dbs: DB[], acks: Ack[]): Promise<void> {
  for (const a of acks) {
    const where = `ack of peer ${a.peer}'s ${JSON.stringify(a.op).slice(0, 200)} (format ${a.format ?? 2}, log ${a.writer.slice(0, 8)} [${a.before}, ${a.after}))`
    const db = dbs[a.peer]
    if (db === undefined) fail(`${where}: no such peer`)
    const w = db.engine.writers.get(a.writer)
    if (w === undefined) fail(`${where}: the writer does not hold its own log`)
    if (w.core.contiguousLength < a.after) fail(`${where}: the log is only ${w.core.contiguousLength} long`)
    // a log's first write also appends the Hyperbee header (block 0)
    const start = a.before === 0 && a.after > 0 ? 1 : a.before
    const n = a.after - start
    const [least, most] = entriesOf(a.op, a.format ?? 2)
    if (n < least || n > most) fail(`${where}: ${n} entries appended, expected ${least === most ? least : `${least} to ${most}`}`)
    const why = matchWrite(a.op, await entriesAt(db, a.writer, start, a.after, where), a.format ?? 2, a.writer, a.target)
    if (why !== null) fail(`${where}: the entries do not hold the write: ${why}`)
  }
}

/** The part of writers() every peer must agree on. */
function writersOf (db: DB, members: Set<string>): string {
  return JSON.stringify(db.writers()
    .filter((w) => members.has(w.key.toString('hex')))
    .map((w) => [w.key.toString('hex').slice(0, 12), w.length, w.cut, w.folded, w.member, w.removed]))
}

/**
 * The checks after the final full sync. `dbs` are open peers holding the same logs; `names`
 * label them in messages. Returns the reference (for logs and digests).
 */
export async function finalChecks (dbs: DB[], names: string[], acks: Ack[]): Promise<Reference> {
  const ref = await reference(logsOf(dbs[0] as DB))
  const expected = ref.view
  const dumps = await Promise.all(dbs.map(dump))
  for (let i = 0; i < dbs.length; i++) {
    const db = dbs[i] as DB
    const name = names[i] as string
    const diff = firstDifference(dumps[i] as Array<[Bytes, Bytes]>, expected)
    if (diff !== null) {
      const keys = [...ref.why].map(([k, w]) => `${k}: ${w}`).join('; ')
      fail(`${name}'s view differs from the reference model at ${diff}\n  view:  ${showDump(dumps[i] as Array<[Bytes, Bytes]>)}\n  model: ${showDump(expected)}\n  rules: ${keys}`)
    }
    if (!db.hash().equals((dbs[0] as DB).hash())) fail(`${name}'s view digest differs from ${names[0] as string}'s`)
    if (ref.bad !== 0) fail(`the model skipped ${ref.bad} bad entries; honest writers wrote none`)
    const stats = db.stats()
    if (stats.badEntries !== 0) fail(`${name} skipped ${stats.badEntries} bad entries; honest writers wrote none`)
  }
  // writers(): the same logs, lengths, cuts, folded lengths and removals everywhere, as the model says
  const ids = new Set(ref.members.keys())
  const agreed = writersOf(dbs[0] as DB, ids)
  for (let i = 1; i < dbs.length; i++) {
    const mine = writersOf(dbs[i] as DB, ids)
    if (mine !== agreed) fail(`writers() differ: ${names[0] as string} ${agreed} vs ${names[i] as string} ${mine}`)
  }
  for (let i = 0; i < dbs.length; i++) {
    const db = dbs[i] as DB
    const name = names[i] as string
    for (const w of db.writers()) {
      const id = w.key.toString('hex')
      const m = ref.members.get(id)
      const cut = m === undefined ? 0 : m.removed ? m.cut : w.length
      if (w.member !== (m !== undefined) || w.removed !== (m?.removed ?? false) || w.cut !== cut) {
        fail(`${name}: writer ${id.slice(0, 8)} is ${JSON.stringify({ member: w.member, removed: w.removed, cut: w.cut })}, the model says ${JSON.stringify({ member: m !== undefined, removed: m?.removed ?? false, cut })}`)
      }
    }
    for (const id of ids) if (!db.writers().some((w) => w.key.toString('hex') === id)) fail(`${name} does not hold member log ${id.slice(0, 8)}`)
    const own = ref.members.get(hex(db.writerKey))
    if (db.writable !== (own !== undefined && !own.removed)) fail(`${name}: writable is ${String(db.writable)}, the model says ${String(!db.writable)}`)
  }
  await checkAcks(dbs, acks)
  // a member's log is the same on every peer (signed): its acknowledged writes are everywhere
  for (const a of acks) {
    if (!ref.members.has(a.writer)) continue
    await checkAcks(dbs.map(() => dbs[0] as DB), [a])
  }
  return ref
}
