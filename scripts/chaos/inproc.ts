/**
 * The in-process chaos runner: every peer is a MeshDB in this process, replicating over in-process
 * streams. A run is exactly reproducible from its seed:
 *
 * - clocks are virtual: each peer reads `now + skew`, and `now` moves only by the steps' `dt`;
 * - writer keys are fixed by the seed (each peer's Corestore is created with a primary key derived
 *   from it before the MeshDB first opens it);
 * - after every step the runner waits until every group of linked peers has exchanged and folded
 *   everything (a condition, see checks.ts `inSync`), so what each peer holds before a step
 *   depends only on the steps before it.
 *
 * One-way catch-up ("B gets what A has, A learns nothing") is exact: it replicates, one log at a
 * time, only the logs A holds at least as long as B does (a Hypercore session's own replication
 * stream), then tears those streams down.
 *
 * Each run records a trace (every step, its outcome, and every open peer's view digest after it);
 * its hash is the run's digest, equal across replays of the seed.
 *
 * An encrypted schedule (`schedule.encrypted`): peer 0 creates the database with `encrypted: true`
 * and every other peer opens with its `encryptionKey`. Only the live writers at the end are held
 * to reading everything (checks.ts); after the final checks every live writer writes once more,
 * and no other peer may hold the key of those entries (`finalEntriesCheck`).
 *
 * Compaction (`schedule.compaction`): each peer opens with its options, a `compact` step must
 * leave the peer's view and digest as they were, and each acknowledged write is checked in its
 * writer's log when it is acknowledged (compaction may clear its blocks later). After the final
 * checks comes `stabilityRound` (checks.ts). What compaction did (blocks cleared, tombstones
 * collected) depends on when records landed, which depends on timing: the trace shows it without
 * hashing it into the digest, and so for view damage (how much a file held).
 */
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import Corestore from 'corestore'
import { pino } from 'pino'
import { MeshDB, type MeshDBOptions, type WriteOperation } from '../../index.js'
import { ChaosFailure, RECORDS_SOON, checkAckNodes, recordsSoon, describeGroup, dump, entriesAt, fail, hasBlock, linkedBy, missingRuns, showDump, finalChecks, finalEntriesCheck, inSync, settled, stabilityRound, waitFor, type Ack } from './checks.js'
import { EPOCH, compactionOptions, describeSchedule, formatAt, replayCommand, type ChaosOp, type Schedule, type Step } from './schedule.js'
import { connect } from '../link.js'
import { damageView, flipTarget } from './damage.js'
import { encodeIndexKey, fieldKeys, type IndexKey } from '../../lib/collate.js'
import { tokenize } from '../../lib/text.js'
import type { WriterLog } from '../../lib/writer-log.js'
import type { Json } from '../../crdt/json.js'


export { replayCommand }

type DB = MeshDB<string, string>

export interface RunResult {
  seed: number
  digest: string
  ms: number
  acked: number
  rejected: number
  skipped: number
  /**
   * Acknowledged membership entries that the final replay does not count (their author was not
   * yet a member at their stamp, e.g. a clock behind the stamp of its own add): by the rules, but
   * worth knowing how often it happens.
   */
  uncounted: number
  /** Of those, the ones whose author is a member never removed: stamped before its own add counted. */
  uncountedEarly: number
  /**
   * Encrypted schedules: peers (no live writers) holding the epoch of a final entry only through
   * the creator's key handed to them by hand, which no grant records (checks.ts `finalEntriesCheck`).
   */
  handed: number
  /**
   * Tombstones held, summed over the peers that read everything, after every live writer
   * compacted once at the end (checks.ts `stabilityRound` says why some may be).
   */
  held: number
  summary: string
}

export interface RunOptions {
  /** Called with every trace line as it happens. */
  onTrace?: (line: string) => void
  /** How long one wait for a group to sync may take. */
  timeout?: number
  /** Keep the directories of a failed run (the path is in the message). */
  keep?: boolean
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** The primary key of peer `i`'s Corestore in the run of `seed`: writer keys follow from it. */
export function primaryKey (seed: number, i: number): Buffer {
  return createHash('sha256').update(`meshbee-chaos/${seed}/${i}`).digest()
}

/** Creates peer `i`'s store with its seeded primary key, so its writer key is the same every run. */
export async function seedStore (dir: string, seed: number, i: number): Promise<void> {
  await mkdir(join(dir, 'cores'), { recursive: true })
  const store = new Corestore(join(dir, 'cores'), { primaryKey: primaryKey(seed, i), unsafe: true } as never)
  await store.ready()
  await store.close()
}

/** Applies a write to a database; membership targets are given as writer keys. */
export async function applyOp (db: MeshDB<string, string>, op: ChaosOp, writerKeys: string[]): Promise<void> {
  switch (op.kind) {
    case 'put': return await db.put(op.key, op.value)
    case 'del': return await db.del(op.key)
    case 'batch':
      if (op.chained) {
        const b = db.batch()
        for (const i of op.items) {
          if (i.type === 'put') b.put(i.key, i.value)
          else b.del(i.key)
        }
        return await b.write()
      }
      return await db.batch(op.items.map((i) => i.type === 'put' ? { type: 'put' as const, key: i.key, value: i.value } : { type: 'del' as const, key: i.key }))
    case 'patch':
      return await db.patch(op.key, Object.fromEntries(op.fields.map((f) => [f[0], f.length === 1 ? undefined : f[1]])))
    case 'sadd': return await db.sadd(op.key, op.member)
    case 'srem': return await db.srem(op.key, op.member)
    case 'write': return await db.write(op.items.map(writeOperation))
    case 'add-writer': return await db.addWriter(writerKeys[op.target] as string)
    case 'remove-writer': return await db.removeWriter(writerKeys[op.target] as string)
  }
}

/** A data op of a chaos `write`, as `db.write` takes it. */
function writeOperation (op: ChaosOp): WriteOperation<string, string> {
  switch (op.kind) {
    case 'put': return { type: 'put', key: op.key, value: op.value }
    case 'del': return { type: 'del', key: op.key }
    case 'patch': return { type: 'patch', key: op.key, fields: Object.fromEntries(op.fields.map((f) => [f[0], f.length === 1 ? undefined : f[1]])) }
    case 'sadd':
    case 'srem': return { type: op.kind, key: op.key, member: op.member }
    default: throw new TypeError(`a write holds data ops only, not ${op.kind}`)
  }
}

/** The error codes a write may be refused with in a chaos run (everything else is a failure). */
export function expectedRefusal (op: ChaosOp, code: string | undefined, clockAhead = false): boolean {
  if (code === 'MESHBEE_NOT_WRITABLE') return true
  // a writer whose clock ran more than MAX_LEAD ahead while it had seen nobody: only a peer of a
  // schedule with a day-ahead clock (`clockAhead`)
  if (code === 'MESHBEE_CLOCK_AHEAD') return clockAhead
  // a peer whose adder's clock ran more than maxDrift ahead of its own (skews of minutes)
  if ((op.kind === 'add-writer' || op.kind === 'remove-writer') && code === 'MESHBEE_CLOCK_BEHIND') return true
  if (op.kind === 'add-writer') return code === 'MESHBEE_WRITER_REMOVED'
  if (op.kind === 'remove-writer') return code === 'MESHBEE_INVALID_KEY'
  return false
}

export function describeStep (s: Step): string {
  switch (s.t) {
    case 'op': return `p${s.peer} ${opText(s.op)}`
    case 'link': return `link p${s.a}-p${s.b}`
    case 'unlink': return `unlink p${s.a}-p${s.b}`
    case 'oneway': return `one-way p${s.from}->p${s.to}`
    case 'restart': return `restart p${s.peer}${s.relink ? ' relinked' : ''} skew ${s.skew}`
    case 'down': return `down p${s.peer}`
    case 'up': return `up p${s.peer}${s.relink ? ' relinked' : ''}`
    case 'kill': return `kill p${s.peer} ${s.when} +${s.delay}ms`
    case 'burst': return `burst p${s.peer} [${s.ops.map(opText).join(', ')}]`
    case 'compact': return `compact p${s.peer}`
  }
}

/** Large writes show their size and first few ops only. */
const SHOWN = 8

export function opText (op: ChaosOp): string {
  switch (op.kind) {
    case 'put': return `put ${op.key}=${op.value.slice(0, 40)}`
    case 'del': return `del ${op.key}`
    case 'batch': return `batch${op.chained ? '(chained)' : ''} ${op.items.map((i) => i.type === 'put' ? `+${i.key}` : `-${i.key}`).join(' ')}`
    case 'patch': return op.fields.length > SHOWN
      ? `patch ${op.key} ${op.fields.length} fields ${JSON.stringify(op.fields.slice(0, SHOWN)).slice(0, -1)},…]`
      : `patch ${op.key} ${JSON.stringify(op.fields)}`
    case 'sadd': return `sadd ${op.key} ${JSON.stringify(op.member)}`
    case 'srem': return `srem ${op.key} ${JSON.stringify(op.member)}`
    case 'add-writer': return `add-writer p${op.target}`
    case 'remove-writer': return `remove-writer p${op.target}`
    case 'write': return op.items.length > SHOWN
      ? `write ${op.items.length} ops [${op.items.slice(0, SHOWN).map(opText).join(', ')}, …]`
      : `write [${op.items.map(opText).join(', ')}]`
  }
}

/** A replication stream of one Hypercore session alone (types/hypercore.d.ts leaves it out). */
function replicateCore (core: unknown, initiator: boolean): Duplex {
  return (core as { replicate: (initiator: boolean) => Duplex }).replicate(initiator)
}

/** Which remote peers each log is replicating with, for failure messages. */
function peerInfo (dbs: DB[], names: string[]): string {
  return dbs.map((db, i) => `\n  ${names[i] as string} replicating: ` + [...db.engine.writers].map(([id, w]) => {
    const peers = (w.core as unknown as { peers?: Array<Record<string, unknown>> }).peers ?? []
    return `${id.slice(0, 6)} with ${peers.length} [${peers.map((p) => ['remoteLength', 'remoteContiguousLength', 'lengthAcked', 'canUpgrade', 'remoteCanUpgrade', 'syncsProcessing', 'needsSync', 'remoteOpened', 'remoteSynced'].map((k) => `${k}=${String(p[k])}`).join(',') + `,sync tx/rx=${JSON.stringify((p.stats as { wireSync?: unknown } | undefined)?.wireSync)},closed=${String((p.channel as { closed?: boolean } | undefined)?.closed)}`).join(' | ')}]`
  }).join('; ')).join('')
}

/** Each log's lengths as a peer's engine sees them, for failure messages. */
function logState (db: DB): string {
  return [...db.engine.writers].map(([id, w]) => `${id.slice(0, 6)} len ${w.core.length} contig ${w.core.contiguousLength} membership ${w.membershipLength} checkpoint ${String(db.engine.checkpoints.get(id))}`).join('; ')
}

interface Peer {
  index: number
  dir: string
  db: DB | null
  skew: number
  writerKey: string
  /** The log format its own writes use now (schedule.legacyUntil); kept across restarts. */
  format: 1 | 2
  /** What a `watch({}, { initial: true })` opened with this incarnation has read: replayed, it must equal the view. */
  watched: Array<{ type: 'put' | 'del', key: string, value: string | undefined }>
  /** The feed's seq and the view when it last closed for a restart: `changes({ since })` must name every key changed since. */
  mark: { seq: number, view: Map<string, string> } | null
}

/** The indexes every chaos peer keeps: a field of JSON values, whole values (a set's members), and code. */
const INDEXES = {
  tag: { version: 1, field: 't' },
  whole: { version: 1, field: '' },
  size: { version: 1, map: (_k: string, v: string) => v.length % 5 },
  words: { version: 1, text: (_k: string, v: string) => v }
}

/** Searches every chaos peer runs against its final view: tags, members, fields, prefixes. */
const SEARCHES = ['p0', 'p1 1', 'p2 3', 'm', 'm0', 'l', 'at p', 't p1']

/** What `search('words', query)` must find in a view: the keys holding every term (the last as a prefix), in key order. */
function expectedSearch (query: string, view: Map<string, string>): string[] {
  const terms = tokenize(query)
  if (terms.length === 0) return []
  const out: string[] = []
  for (const [k, v] of view) {
    const words = new Set(tokenize(v))
    if (terms.every((t, i) => i === terms.length - 1 ? [...words].some((w) => w.startsWith(t)) : words.has(t))) out.push(k)
  }
  return out.sort()
}

/** What index `name` must hold for a view: brute force over its entries, in index order. */
function expectedIndex (name: 'tag' | 'whole' | 'size', view: Map<string, string>): string[] {
  const out: Array<[Buffer, string, string]> = []
  for (const [k, v] of view) {
    let keys: IndexKey[]
    if (name === 'size') keys = [v.length % 5]
    else {
      let parsed: Json | undefined
      try { parsed = JSON.parse(v) as Json } catch { parsed = undefined }
      keys = fieldKeys(parsed, name === 'tag' ? ['t'] : [])
    }
    for (const ik of new Set(keys)) out.push([encodeIndexKey(ik), k, JSON.stringify(ik)])
  }
  return out.sort((a, b) => Buffer.compare(a[0], b[0]) || Buffer.compare(Buffer.from(a[1]), Buffer.from(b[1]))).map(([, k, ik]) => `${ik} ${k}`)
}

/**
 * The change feed and the indexes against the final view: each peer's indexes equal a brute-force
 * pass over it; each peer's watcher (opened with `initial` when the
 * peer last opened), replayed onto an empty map, equals the view, once it has read up to the
 * view's last commit; and `changes({ since })` from the seq a peer had when it last closed for a
 * restart names every key whose value differs from what it held then.
 */
async function checkFeeds (peers: Peer[], final: Array<[Buffer, Buffer]>): Promise<void> {
  const want = new Map(final.map(([k, v]) => [k.toString(), v.toString()]))
  const replay = (p: Peer): Map<string, string> => {
    const m = new Map<string, string>()
    for (const c of p.watched) {
      if (c.type === 'put') m.set(c.key, c.value as string)
      else m.delete(c.key)
    }
    return m
  }
  const same = (a: Map<string, string>): boolean => a.size === want.size && [...a].every(([k, v]) => want.get(k) === v)
  for (const p of peers) {
    const db = p.db as DB
    await waitFor(() => [db], async () => same(replay(p)), () => `p${p.index}'s watcher, replayed, is not its view: ${JSON.stringify([...replay(p)]).slice(0, 1500)} vs ${JSON.stringify([...want]).slice(0, 1500)}`)
    for (const q of SEARCHES) {
      const got: string[] = []
      for await (const r of db.search('words', q, { limit: Infinity })) got.push(r.key)
      const exp = expectedSearch(q, want)
      if (JSON.stringify(got.sort()) !== JSON.stringify(exp)) fail(`p${p.index}'s search for ${JSON.stringify(q)} found ${JSON.stringify(got)}, not ${JSON.stringify(exp)}`)
    }
    for (const name of ['tag', 'whole', 'size'] as const) {
      const got: string[] = []
      for await (const e of db.query(name)) got.push(`${JSON.stringify(e.indexKey)} ${e.key}`)
      const exp = expectedIndex(name, want)
      if (JSON.stringify(got) !== JSON.stringify(exp)) fail(`p${p.index}'s index ${name} is not its view's: ${JSON.stringify(got).slice(0, 1000)} vs ${JSON.stringify(exp).slice(0, 1000)}`)
    }
    if (p.mark === null) continue
    const named = new Set<string>()
    try {
      for await (const c of db.changes({ since: p.mark.seq })) named.add(c.key)
    } catch (err) {
      // the view was folded anew since (damage), or deletions since were dropped with their
      // tombstones (compaction): the feed says so rather than list part of it
      const code = (err as { code?: string }).code
      if (code === 'MESHBEE_FEED_RESET' || code === 'MESHBEE_FEED_COMPACTED') continue
      throw err
    }
    for (const k of new Set([...want.keys(), ...p.mark.view.keys()])) {
      if (want.get(k) !== p.mark.view.get(k) && !named.has(k)) fail(`p${p.index}'s changes({ since: ${p.mark.seq} }) does not name ${k}, which changed since (${String(p.mark.view.get(k)).slice(0, 100)} -> ${String(want.get(k)).slice(0, 100)})`)
    }
  }
}

export async function runInProcess (schedule: Schedule, opts: RunOptions = {}): Promise<RunResult> {
  const started = Date.now()
  const seed = schedule.seed
  const timeout = opts.timeout ?? 30_000
  const trace: string[] = []
  const problems: string[] = []
  const acks: Ack[] = []
  const counts = { acked: 0, rejected: 0, skipped: 0 }
  const root = await mkdtemp(join(tmpdir(), `meshbee-chaos-${seed}-`))
  const peers: Peer[] = []
  const links = new Map<string, () => void>()
  let now = EPOCH
  let key: Buffer | undefined
  /** An encrypted schedule: the creator's encryption key, handed to every other peer (and to itself on reopens). */
  let encryptionKey: Buffer | undefined
  let failed = false

  /** A trace line; `detail` is shown with it but not hashed into the digest (it depends on timing). */
  const note = (line: string, detail?: string): void => {
    trace.push(line)
    opts.onTrace?.(detail === undefined ? line : `${line}: ${detail}`)
  }
  /** The detail of the step being run (see `note`). */
  let stepDetail: string | undefined
  const onUnhandled = (err: unknown): void => { problems.push(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`) }
  process.on('unhandledRejection', onUnhandled)

  /** The peer whose damaged view is being reopened and checked: a rebuild is expected there then. */
  let damaged = -1
  const logger = (i: number) => pino({ level: 'warn' }, {
    write (line: string) {
      const o = JSON.parse(line) as { level: number, msg: string, err?: { message?: string } }
      // clamped remote clocks are expected (skews of minutes), and so are rebuilds when a schedule
      // damages views; anything else is not
      if (o.level >= 50 || !(/maxDrift/.test(o.msg) || (damaged === i && /rebuilding the view/.test(o.msg)))) problems.push(`p${i} logged: ${line.slice(0, 1500)}`)
    }
  })

  const open = async (p: Peer): Promise<void> => {
    const privacy = schedule.encrypted !== true ? {} : encryptionKey === undefined ? { encrypted: true } : { encryptionKey }
    // (the format hook from the start: the open's own fold may append a stability record, which an older release never writes)
    const db = new MeshDB<string, string>(p.dir, { key, wallClock: () => now + p.skew, logger: logger(p.index), sparseAfter: schedule.sparseAfter, indexes: INDEXES, ...privacy, ...compactionOptions(schedule, p.index), ...(p.format === 1 ? { testFormat: 1 } : {}) } as MeshDBOptions<string, string>)
    await db.open()
    if ((compactionOptions(schedule, p.index).cutsEvery ?? Infinity) <= RECORDS_SOON) recordsSoon(db)
    p.db = db
    watch(p, db)
  }
  /**
   * A watcher for this incarnation: everything it reads, replayed, must be the view. A rebuild of
   * the view (verify repairing damage) ends it with MESHBEE_FEED_RESET: it starts again.
   */
  const watch = (p: Peer, db: MeshDB<string, string>): void => {
    const watched: Peer['watched'] = []
    p.watched = watched
    const it = db.watch({}, { initial: true, maxBuffer: Infinity })
    void (async () => {
      try {
        for await (const c of it) watched.push({ type: c.type, key: c.key, value: c.value })
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code === 'MESHBEE_FEED_RESET' && p.db === db) watch(p, db)
        else if (code !== 'MESHBEE_CLOSED') problems.push(`p${p.index}'s watch failed: ${(err as Error).stack ?? String(err)}`)
      }
    })()
  }
  const live = (): DB[] => peers.flatMap((p) => p.db === null ? [] : [p.db])
  /**
   * A peer's view digest for the trace. In an encrypted schedule a peer that is no writer (never
   * added, or removed) stops at blocks sealed under epochs it lacks, and where it stops depends on
   * the lengths it happened to fold at: its view is not a function of the schedule, so the trace
   * shows '-' for it (the final checks still check what it must hold).
   */
  const traceDigest = (db: DB): string => schedule.encrypted === true && !db.writable ? '-' : db.hash().toString('hex').slice(0, 8)
  const linkId = (a: number, b: number): string => `${Math.min(a, b)},${Math.max(a, b)}`
  const link = (a: number, b: number): boolean => {
    const id = linkId(a, b)
    const x = peers[a]?.db
    const y = peers[b]?.db
    if (links.has(id) || x == null || y == null || a === b) return false
    links.set(id, connect(x, y))
    return true
  }
  const unlink = (a: number, b: number): boolean => {
    const id = linkId(a, b)
    const cut = links.get(id)
    if (cut === undefined) return false
    cut()
    links.delete(id)
    return true
  }
  const isolate = (i: number): void => {
    for (const id of [...links.keys()]) {
      const [a, b] = id.split(',').map(Number) as [number, number]
      if (a === i || b === i) unlink(a, b)
    }
  }
  const relink = (i: number): void => {
    for (const [a, b] of schedule.allowed) if (a === i || b === i) link(a, b)
  }
  /** Groups of open peers connected through links. */
  const components = (): Peer[][] => {
    const seen = new Set<number>()
    const out: Peer[][] = []
    for (const p of peers) {
      if (p.db === null || seen.has(p.index)) continue
      const group: Peer[] = []
      const stack = [p.index]
      seen.add(p.index)
      while (stack.length > 0) {
        const i = stack.pop() as number
        group.push(peers[i] as Peer)
        for (const id of links.keys()) {
          const [a, b] = id.split(',').map(Number) as [number, number]
          const other = a === i ? b : b === i ? a : -1
          if (other >= 0 && !seen.has(other) && peers[other]?.db != null) {
            seen.add(other)
            stack.push(other)
          }
        }
      }
      out.push(group)
    }
    return out
  }
  const componentOf = (i: number): Peer[] => components().find((g) => g.some((p) => p.index === i)) ?? []
  const settle = async (what: string): Promise<void> => {
    for (const group of components()) {
      const dbs = group.map((p) => p.db as DB)
      const linked = linkedBy(group.map((p) => p.index), [...links.keys()].map((id) => id.split(',').map(Number) as [number, number]))
      await waitFor(() => dbs, async () => await inSync(dbs, linked), () => `${what}: group ${group.map((p) => 'p' + p.index).join(',')} (links ${[...links.keys()].join(' ')}) never synced\n  ${describeGroup(dbs, group.map((p) => 'p' + p.index))}${peerInfo(dbs, group.map((p) => 'p' + p.index))}`, timeout)
    }
    if (problems.length > 0) fail(problems.join('\n'))
  }

  /**
   * `to` catches up on every log `from` holds at least as far; `from` receives nothing. (Blocks
   * `from` cleared it cannot send; blocks `to` cleared it does not want.)
   */
  const oneway = async (from: Peer, to: Peer): Promise<string> => {
    const a = from.db as DB
    const b = to.db as DB
    const streams = new Map<string, () => void>()
    const peersOf = componentOf(to.index)
    const group = peersOf.map((p) => p.db as DB)
    const linked = linkedBy(peersOf.map((p) => p.index), [...links.keys()].map((id) => id.split(',').map(Number) as [number, number]))
    // (its own log may grow by its stability record, on a timer: that is nothing it received)
    const source = (): string => JSON.stringify([...a.engine.writers].filter(([, w]) => !w.local).map(([id, w]) => [id, w.core.length, missingRuns(w.core)]))
    const before = source()
    const longer = [...a.engine.members.keys()].filter((id) => (a.engine.writers.get(id)?.core.length ?? 0) > (b.engine.writers.get(id)?.core.length ?? 0)).length
    /**
     * Whether `to` lacks blocks of a log that `from` holds (past where `to` cleared it), on a log
     * `from` holds at least as long (else `from` would learn of the longer one).
     */
    const behind = (wa: WriterLog, wb: WriterLog): boolean => {
      if (wb.core.length > wa.core.length) return false
      if (wb.core.length < wa.core.length) return true
      for (const [x, y] of missingRuns(wb.core)) {
        for (let i = Math.max(x, wb.clearedTo); i < Math.min(y, wa.core.length); i++) if (hasBlock(wa.core, i)) return true
      }
      return false
    }
    try {
      await waitFor(() => [a, b], async () => {
        await b.update()
        let done = true
        for (const id of a.engine.members.keys()) {
          const wa = a.engine.writers.get(id)
          if (wa === undefined) fail(`p${from.index} does not hold member log ${id.slice(0, 8)}`)
          const wb = b.engine.writers.get(id)
          if (wb === undefined) {
            // b opens it once it holds the add record that made it a member for a — unless b,
            // holding more records, finds it is no member (checked settled with the group below)
            if (b.engine.members.has(id) || !await settled(b)) done = false
            continue
          }
          if (behind(wa, wb)) {
            done = false
            if (!streams.has(id)) {
              const s1 = replicateCore(wa.core, true)
              const s2 = replicateCore(wb.core, false)
              s1.on('error', () => {})
              s2.on('error', () => {})
              s1.pipe(s2).pipe(s1)
              streams.set(id, () => { s1.destroy(); s2.destroy() })
            }
          }
        }
        return done && await inSync(group, linked)
      }, () => `one-way p${from.index}->p${to.index} never completed\n  ${describeGroup([a, b], ['p' + from.index, 'p' + to.index])}`, timeout)
    } finally {
      for (const cut of streams.values()) cut()
    }
    if (source() !== before) fail(`one-way p${from.index}->p${to.index}: the source's logs changed: ${before} -> ${source()}`)
    // (how many logs were longer depends on whether a timer appended a stability record already)
    stepDetail = `${longer} logs longer`
    return 'caught up'
  }

  const runStep = async (s: Step): Promise<string> => {
    switch (s.t) {
      case 'op': {
        const p = peers[s.peer] as Peer
        if (p.db === null) {
          counts.skipped++
          return 'peer down'
        }
        const db = p.db
        const own = db.engine.own.core
        const before = own.length
        try {
          await applyOp(db, s.op, peers.map((x) => x.writerKey))
        } catch (err) {
          const code = (err as { code?: string }).code
          if (!expectedRefusal(s.op, code, schedule.dayAhead === p.index)) throw err
          if (own.length !== before) fail(`refused write (${code ?? '?'}) appended ${own.length - before} entries`)
          counts.rejected++
          return `refused ${code ?? '?'}`
        }
        const after = own.length
        // read your writes: the own log is folded to its end (to its cut, if the writer removed itself)
        const mine = db.writers().find((w) => w.local)
        if (mine === undefined || mine.folded !== Math.min(mine.cut, after)) fail(`read your writes: p${p.index}'s own log is folded to ${String(mine?.folded)} of ${after} (cut ${String(mine?.cut)}) after the write resolved`)
        const target = s.op.kind === 'add-writer' || s.op.kind === 'remove-writer' ? peers[s.op.target]?.writerKey : undefined
        const ack: Ack = { peer: p.index, writer: p.writerKey, before, after, op: s.op, target, format: p.format }
        // its entries, now (compaction may clear them once they are overwritten)
        const where = `p${p.index}'s ${opText(s.op)} as acknowledged, log [${before}, ${after})`
        checkAckNodes(ack, await entriesAt(db, p.writerKey, before === 0 && after > 0 ? 1 : before, after, where), 0, where)
        acks.push(ack)
        counts.acked++
        // (a log also holds stability records, and an encrypted database's key grants, as many as
        // the timing of folds made due: where a write lands is no function of the schedule, only
        // that it landed)
        stepDetail = `[${before},${after})`
        return `ok${p.format === 1 ? ' in format 1' : ''}`
      }
      case 'link': return link(s.a, s.b) ? 'linked' : 'no-op'
      case 'unlink': return unlink(s.a, s.b) ? 'cut' : 'no-op'
      case 'oneway': {
        const from = peers[s.from] as Peer
        const to = peers[s.to] as Peer
        if (from.db === null || to.db === null) return 'peer down'
        if (componentOf(s.from).includes(to)) return 'already linked'
        return await oneway(from, to)
      }
      case 'restart': {
        const p = peers[s.peer] as Peer
        if (p.db === null) return 'peer down'
        isolate(p.index)
        const view = await dump(p.db)
        const state = logState(p.db)
        p.mark = { seq: p.db.engine.commit.feed.seq, view: new Map(view.map(([k, v]) => [k.toString(), v.toString()])) }
        await p.db.close()
        if (s.damage !== undefined) {
          const target = s.damage === 'flip' ? flipTarget(view.map(([, v]) => v.toString())) : null
          note(`  p${p.index}'s view damaged (${s.damage})`, await damageView(join(p.dir, 'view'), s.damage, target))
          damaged = p.index
        }
        p.skew = s.skew
        await open(p)
        if (damaged === p.index) {
          // what open does not check (slots and parts only feed later merges), verify does
          const report = await (p.db as unknown as DB).verify({ repair: true })
          if (!report.ok) note(`  p${p.index}'s verify found and repaired problems`, report.problems.slice(0, 3).join('; '))
          damaged = -1
        }
        const again = await dump(p.db as unknown as DB)
        // an encrypted database's peer whose fold stops at a block sealed under an epoch it lacks
        // (a removed or never-added peer, or one whose grant has not arrived) folds a rebuilt view
        // from the logs' current lengths, at which that log may read as nothing: its view may
        // shrink then (what it folded earlier, step by step, it read at shorter lengths)
        const locked = schedule.encrypted === true && damaged === -1 && s.damage !== undefined && (p.db as unknown as DB).stats().lockedReads > 0
        if (locked && JSON.stringify(again) !== JSON.stringify(view)) note(`  p${p.index}'s rebuilt view reads ${again.length} of ${view.length} keys: its fold is locked`)
        else if (JSON.stringify(again) !== JSON.stringify(view)) fail(`p${p.index}'s view changed across a restart: ${showDump(view)} -> ${showDump(again)}; before: ${state}`)
        if (s.relink) relink(p.index)
        return 'restarted'
      }
      case 'down': {
        const p = peers[s.peer] as Peer
        if (p.db === null) return 'no-op'
        isolate(p.index)
        await p.db.close()
        p.db = null
        return 'down'
      }
      case 'up': {
        const p = peers[s.peer] as Peer
        if (p.db !== null) return 'no-op'
        await open(p)
        if (s.relink) relink(p.index)
        return 'up'
      }
      case 'compact': {
        const p = peers[s.peer] as Peer
        if (p.db === null) return 'peer down'
        const db = p.db
        const folded = (): string => JSON.stringify(db.writers().map((w) => [w.key.toString('hex'), w.folded]))
        const view = await dump(db)
        const hash = db.hash()
        const before = folded()
        const r = await db.compact()
        const after = await dump(db)
        // (a fold that ran meanwhile, of blocks a link brought, changes the view by itself: the
        // final checks hold that view to the model)
        if (folded() === before) {
          if (JSON.stringify(after) !== JSON.stringify(view)) fail(`p${p.index}'s compact() changed its view: ${showDump(view)} -> ${showDump(after)}`)
          if (!db.hash().equals(hash)) fail(`p${p.index}'s compact() changed its view digest`)
        }
        if (r.tombstones !== db.stats().tombstones) fail(`p${p.index}'s compact() says ${r.tombstones} tombstones are left, stats() ${db.stats().tombstones}`)
        if (compactionOptions(schedule, p.index).history === 'full' && r.blocksCleared > 0) fail(`p${p.index} keeps full history, yet compact() cleared ${r.blocksCleared} blocks`)
        stepDetail = `${r.blocksCleared} blocks cleared, ${r.tombstonesCollected} tombstones collected, ${r.tombstones} held${r.heldBackBy.length > 0 ? ` (held back by ${r.heldBackBy.map((k) => `p${peers.findIndex((x) => x.writerKey === k)}`).join(' ')})` : ''}`
        return 'compacted'
      }
      case 'kill':
      case 'burst':
        return 'multi-process only'
    }
  }

  try {
    for (let i = 0; i < schedule.peers; i++) {
      const dir = join(root, `p${i}`)
      await seedStore(dir, seed, i)
      const p: Peer = { index: i, dir, db: null, skew: schedule.skews[i] as number, writerKey: '', format: formatAt(schedule, i, 0), watched: [], mark: null }
      peers.push(p)
      await open(p)
      const db = p.db as unknown as DB
      p.writerKey = hex(db.writerKey)
      if (i === 0) {
        key = db.key
        if (schedule.encrypted === true) {
          if (db.privacy !== 'encrypted' || db.encryptionKey === null) fail(`p0 created the database ${String(db.privacy)}, not encrypted`)
          encryptionKey = db.encryptionKey
        }
      }
    }
    const first = peers[0]?.db as DB
    for (const m of schedule.initialMembers) await first.addWriter(peers[m]?.writerKey as string)
    for (let i = 1; i < peers.length; i++) link(0, i)
    await settle('setup')
    for (let i = 1; i < peers.length; i++) unlink(0, i)
    note(`setup: ${describeSchedule(schedule)}; writers ${peers.map((p) => `p${p.index}=${p.writerKey.slice(0, 8)}`).join(' ')}`)

    for (let n = 0; n < schedule.steps.length; n++) {
      const s = schedule.steps[n] as Step
      now += s.dt
      // peers that upgrade at this step write log format 2 from now on (whether up or down)
      const upgraded: string[] = []
      for (const p of peers) {
        const format = formatAt(schedule, p.index, n)
        if (format === p.format) continue
        p.format = format
        if (p.db !== null) p.db.engine.testHooks.format = format === 1 ? 1 : undefined
        upgraded.push(`p${p.index}`)
      }
      let outcome: string
      stepDetail = undefined
      try {
        outcome = await runStep(s)
        await settle(`step ${n}`)
      } catch (err) {
        note(`#${n} t+${now - EPOCH} ${describeStep(s)} -> FAILED`)
        throw err
      }
      note(`#${n} t+${now - EPOCH} ${upgraded.length > 0 ? `[${upgraded.join(' ')} to format 2] ` : ''}${describeStep(s)} -> ${outcome} | ${live().map(traceDigest).join(' ')}`, stepDetail)
    }

    // the final full sync: everyone up, the final links, until every peer holds and folded everything
    for (const p of peers) if (p.db === null) await open(p)
    for (const [a, b] of schedule.final) link(a, b)
    if (components().length !== 1) fail(`the final links ${JSON.stringify(schedule.final)} do not connect every peer`)
    await settle('final sync')
    const dbs = peers.map((p) => p.db as DB)
    const names = peers.map((p) => 'p' + p.index)
    const history = peers.map((p) => compactionOptions(schedule, p.index).history)
    const ref = await finalChecks(dbs, names, acks, { history, links: schedule.final })
    // the view every peer that reads everything holds (of an encrypted database: the live writers)
    const final = await dump(dbs[ref.source] as DB)
    const lost = acks.filter((a) => {
      if (a.after === a.before || a.target === undefined) return false
      const m = ref.members.get(a.target)
      return a.op.kind === 'add-writer' ? m === undefined : m?.removed !== true
    })
    const uncounted = lost.length
    const uncountedEarly = lost.filter((a) => ref.members.get(a.writer)?.removed === false).length
    note(`final: ${final.length} keys, ${ref.members.size} members, ${counts.acked} acked, ${counts.rejected} refused, ${counts.skipped} skipped` +
      (schedule.encrypted === true ? `; ${ref.full.length} live writer(s) read everything` : ''),
    ref.cleared > 0 ? `${ref.cleared} acknowledged writes cleared everywhere since (checked when acknowledged)` : undefined)
    await checkFeeds(ref.full.map((i) => peers[i] as Peer), final)
    let handed = 0
    if (schedule.encrypted === true && ref.full.length > 0) {
      const r = await finalEntriesCheck(dbs, names, ref.full, async () => { await settle('sync after the final entries') }, schedule.dayAhead)
      handed = r.handed
      note(r.line)
    }
    // every live writer compacts; then tombstones (checks.ts), and the feeds again
    const stability = await stabilityRound(dbs, names, ref, async () => { await settle('sync in the stability round') }, { history, clockAhead: schedule.dayAhead })
    note('stability round', stability.line)
    await checkFeeds(ref.full.map((i) => peers[i] as Peer), await dump(dbs[ref.source] as DB))

    // a reopened peer reads the same view without refolding
    const p = peers[seed % peers.length] as Peer
    isolate(p.index)
    const closing = await dump(p.db as DB)
    await (p.db as DB).close()
    await open(p)
    if (JSON.stringify(await dump(p.db as unknown as DB)) !== JSON.stringify(closing)) fail(`p${p.index}'s view changed when it reopened after the final sync`)
    if (problems.length > 0) fail(problems.join('\n'))

    const h = createHash('sha256')
    for (const line of trace) h.update(line + '\n')
    for (const [k, v] of final) h.update(k).update(v)
    return { seed, digest: h.digest('hex').slice(0, 16), ms: Date.now() - started, ...counts, uncounted, uncountedEarly, handed, held: stability.held, summary: describeSchedule(schedule) }
  } catch (err) {
    failed = true
    const e = err instanceof Error ? err : new Error(String(err))
    const msg = `chaos schedule failed — replay with: ${replayCommand(schedule)}\n` +
      `${describeSchedule(schedule)}\n${e.message}\nlast steps:\n  ${trace.slice(-25).join('\n  ')}` +
      (opts.keep === true ? `\ndirectories kept in ${root}` : '')
    const out = e instanceof ChaosFailure ? new ChaosFailure(msg) : new Error(msg)
    out.stack = msg + '\n' + (e.stack ?? '')
    throw out
  } finally {
    process.off('unhandledRejection', onUnhandled)
    for (const cut of links.values()) cut()
    for (const p of peers) if (p.db !== null && p.db.status === 'open') await p.db.close().catch(() => {})
    if (!(failed && opts.keep === true)) await rm(root, { recursive: true, force: true })
  }
}
