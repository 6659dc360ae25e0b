/**
 * The merge engine: the writer logs, membership, and the fold that turns them into the view.
 *
 * State per user key in the view is the set of slots (each member's latest entry for the key at
 * its cut); the rendered value is a pure function of the slots. A fold replaces the slots of the
 * keys each writer changed between its checkpoint and its target length (a Hyperbee diff), so its
 * cost follows the changed keys, not history, and the view stays a pure function of the cuts even
 * when a cut moves back (a removal): the diff from the old checkpoint down to the cut names exactly
 * the keys to re-merge.
 */
import { EventEmitter } from 'node:events'
import { statSync, unlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import Corestore from 'corestore'
import Hyperbee from 'hyperbee'
import type Hypercore from 'hypercore'
import { type Logger, pino } from 'pino'
import { HLC, compareStamps, compareVersions, type Stamp } from '../crdt/hlc.js'
import { EMPTY, kind, mergeAll, normalize, render, type KeyState } from '../crdt/keystate.js'
import { encodeState } from '../crdt/codec.js'
import { tagId, tagsOf } from '../crdt/orset.js'
import type { Json } from '../crdt/json.js'
import {
  ADD_WRITER, DATA_RANGE, DEL, MAX_KEY_BYTES, MAX_VALUE_BYTES, MEMBERSHIP_RANGE, PUT, REMOVE_WRITER, STATE,
  dataKey, decodeData, decodeEntry, decodeMembership, encodeEntry, membershipKey, slotState, type DataEntry
} from './entry.js'
import type { Stats, WriterInfo } from './types.js'
import { resolveMembers, type Member, type MembershipRecord } from './membership.js'
import { ViewStore, setSlot, type BatchOp, type Slot } from './view.js'
import { digestFromBuffer, digestToBuffer, replaceEntry } from './digest.js'
import { MeshError, clockBehind, closed, invalidArgument, keyMismatch, notWritable, tooLarge, writerRemoved } from './errors.js'
import './hypercore-patch.js' // a lost length announcement in Hypercore's replicator: see the file

export type WriteOp =
  | { type: 'put', key: Uint8Array, value: Uint8Array }
  | { type: 'del', key: Uint8Array }
  | { type: 'patch', key: Uint8Array, fields: ReadonlyArray<readonly [string, Json | undefined]> }
  | { type: 'sadd', key: Uint8Array, member: Json }
  | { type: 'srem', key: Uint8Array, member: Json }

export interface EngineOptions {
  key?: Uint8Array
  /** Where the view lives when `storage` is a Corestore. */
  viewPath?: string
  logger?: Logger
  maxDrift?: number
  /** The wall clock (ms) the HLC reads; Date.now by default. Tests pass a controlled one. */
  wallClock?: () => number
  /**
   * A remote log this many blocks or more ahead of what is held locally is caught up sparsely:
   * only the blocks its Hyperbee diff needs are fetched, folded, and the rest of the log is
   * downloaded afterwards (for seeding). Default 256; Infinity turns it off.
   */
  sparseAfter?: number
}

export interface WriterState {
  readonly key: Uint8Array
  readonly core: Hypercore
  readonly bee: Hyperbee
  /** Membership records of this log, by bee key (hex), read up to `mlen`. */
  readonly records: Map<string, MembershipRecord>
  mlen: number
  /** Largest amount (ms) by which this writer's stamps ran ahead of the local wall clock. */
  maxSkew: number
  /** Index of the first block that is not a well-formed Hyperbee block: the log counts up to it. */
  poison: number
  /**
   * Lengths of this log seen as its signed length (`core.length` on open and on every append).
   * The writer signs at the end of each append, so these never end inside a Hyperbee batch: the
   * fold only stops at them.
   */
  signed: number[]
  /**
   * A signed length whose diff from the checkpoint reads only local blocks, after a sparse fetch
   * (0: none). With the log's contiguous length it bounds how far a fold can read.
   */
  sparse: number
  /** Whether a sparse fetch of this log is running. */
  fetching: boolean
  /** After a failed or missed sparse fetch: no other until the contiguous length reaches this. */
  noSparseUntil: number
  /** The download of the whole log (live), paused while a sparse fetch runs. */
  bulk: { destroy: () => void } | null
}

interface BeeMessages {
  Header: { decode: (b: Uint8Array) => { protocol: string } }
  Node: { decode: (b: Uint8Array) => { index: Uint8Array, key: Uint8Array, value?: Uint8Array | null } }
  YoloIndex: { decode: (b: Uint8Array) => { levels: Array<{ keys: number[], children: number[] }> } }
}
const messages = createRequire(import.meta.url)('hyperbee/lib/messages.js') as BeeMessages

/**
 * Corestore writes its device file (`CORESTORE`) once, when it creates a store: it opens the file
 * (empty), then writes it in one go. A process killed in between leaves it empty, and Corestore
 * then refuses the store forever ("Invalid device file, was modified"). An empty device file
 * carries nothing (the store's database only opens after the file is written, so nothing else was
 * stored yet): removing it lets Corestore write it anew.
 */
function removeTornDeviceFile (cores: string): void {
  const file = join(cores, 'CORESTORE')
  try {
    if (statSync(file).size === 0) unlinkSync(file)
  } catch {}
}

/** Hypercore's default request window (lib/replicator.js DEFAULT_MAX_INFLIGHT), restored after Hyperbee's open. */
const INFLIGHT = [16, 512] as const
/** Hyperbee's window, for a sparse fetch (see openWriter). */
const SPARSE_INFLIGHT = [256, 512] as const

/** Sets how many block requests a core keeps in flight per peer (Hypercore scales it with the round-trip time). */
function setWindow (core: Hypercore, [min, max]: readonly [number, number]): void {
  const rep = (core as unknown as { replicator?: { setInflightRange?: (min: number, max: number) => void } }).replicator
  rep?.setInflightRange?.(min, max)
}
/** Steps forward of at most this many blocks are read block by block instead of diffed. */
const SCAN_LIMIT = 32
/** How many blocks a scan reads at once. */
const SCAN_READS = 64
/** A fold commits once this many keys are staged, at the end of a writer's diff (see foldOnce). */
const FOLD_CHUNK = 1024
/** How long a sparse fetch waits for one block before it gives up (the log is then downloaded whole). */
const FETCH_TIMEOUT = 15_000

interface TreeLevel { keys: number[], children: number[] }

/**
 * The number of keys in a Hyperbee tree, estimated from one block's index: the path of nodes from
 * the root to the block's key, as if every node had as many children and keys as the one on the
 * path at its depth.
 */
export function treeSizeEstimate (levels: TreeLevel[]): number {
  let n = 0
  for (let i = levels.length - 1; i >= 0; i--) {
    const node = levels[i] as TreeLevel
    n = node.keys.length + (node.children.length / 2) * n
  }
  return n
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
const buf = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)

class Staged {
  readonly ops: BatchOp[] = []
  constructor (public digest: bigint) {}
}

/** One writer's latest entry for a key. `value` is what that writer alone says the key holds. */
export interface EntryVersion {
  writer: Buffer
  stamp: Stamp
  type: 'put' | 'del' | 'state'
  value: Buffer | null
}

export interface Change {
  key: Buffer
  /** 'put'/'del'/'state': the writer's new entry; 'gone': it has no entry for the key at `to`. */
  type: 'put' | 'del' | 'state' | 'gone'
  value: Buffer | null
  previous: Buffer | null
  stamp: Stamp | null
  seq: number | null
}

/** What `readBlocks` needs of a Hypercore's storage (hypercore 11's session state). */
interface BlockReader { state?: { storage?: { read?: () => { getBlock: (i: number) => Promise<Uint8Array | null>, tryFlush: () => void } } } }

/**
 * The held blocks [start, end) of a core (null for one not held), read in one storage batch: one
 * native RocksDB call for them all, where `core.get` makes one per block (a synchronous call on the
 * main thread each, ~20 µs, most of a dense fold's cost). Local reads only: the blocks were
 * verified when they were stored. Falls back to `core.get` if the storage is not what it expects.
 */
async function readBlocks (core: Hypercore, start: number, end: number): Promise<Array<Uint8Array | null>> {
  const storage = (core as unknown as BlockReader).state?.storage
  if (typeof storage?.read === 'function') {
    const rx = storage.read()
    const reads: Array<Promise<Uint8Array | null>> = []
    for (let i = start; i < end; i++) reads.push(rx.getBlock(i))
    rx.tryFlush()
    return await Promise.all(reads)
  }
  const reads: Array<Promise<Uint8Array | null>> = []
  for (let i = start; i < end; i++) reads.push(core.get(i, { wait: false }))
  return await Promise.all(reads)
}

export class Engine extends EventEmitter {
  readonly store: Corestore
  readonly view: ViewStore
  readonly log: Logger
  readonly stats: Stats = { folds: 0, diffEntries: 0, keysMerged: 0, badEntries: 0, clampedStamps: 0, sparseFetches: 0, sparseBlocks: 0, sparseSkipped: 0 }
  readonly writers = new Map<string, WriterState>()
  members = new Map<string, Member>()
  checkpoints = new Map<string, number>()
  hlc: HLC
  /** The view digest (see digest.ts), current with the committed view. */
  digest = 0n
  key!: Buffer
  own!: WriterState
  creator!: WriterState

  private readonly wallClock: () => number
  private readonly sparseAfter: number
  private readonly givenKey: Buffer | null
  private queue: Promise<unknown> = Promise.resolve()
  private poisonings = 0
  private pending: Promise<boolean> | null = null
  private closing = false

  constructor (storage: string | Corestore, opts: EngineOptions = {}) {
    super()
    if (typeof storage === 'string') {
      removeTornDeviceFile(join(storage, 'cores'))
      this.store = new Corestore(join(storage, 'cores'))
      this.view = new ViewStore(join(storage, 'view'))
    } else {
      if (typeof opts.viewPath !== 'string') throw invalidArgument('A Corestore as storage needs opts.viewPath, a directory for the view')
      // a session keeps the caller's namespace only if told so (Corestore 7's session() drops it)
      this.store = storage.session({ namespace: (storage as unknown as { ns?: Buffer }).ns })
      this.view = new ViewStore(opts.viewPath)
    }
    this.log = opts.logger ?? pino({ level: 'silent' })
    this.wallClock = opts.wallClock ?? Date.now
    this.sparseAfter = opts.sparseAfter ?? 256
    this.hlc = new HLC({ maxDrift: opts.maxDrift, wallClock: this.wallClock })
    this.givenKey = opts.key === undefined ? null : buf(opts.key)
  }

  get writable (): boolean {
    const m = this.members.get(hex(this.own.key))
    return m !== undefined && !m.removed
  }

  async open (): Promise<void> {
    await this.store.ready()
    await this.view.open()
    const stored = await this.view.getMeta('key')
    if (stored !== undefined && this.givenKey !== null && !stored.equals(this.givenKey)) {
      throw keyMismatch(stored.toString('hex'), this.givenKey.toString('hex'))
    }
    this.own = await this.openWriter(this.store.get({ name: 'meshbee-writer' }))
    this.key = this.givenKey ?? stored ?? this.own.key as Buffer
    this.creator = this.writers.get(hex(this.key)) ?? await this.openWriter(this.store.get({ key: this.key }))
    this.checkpoints = await this.view.readCheckpoints()
    const hash = await this.view.getMeta('hash')
    this.digest = hash === undefined ? 0n : digestFromBuffer(hash)

    const saved = await this.view.readStamp()
    if (saved !== null) this.hlc.restore(saved)
    const last = await this.lastOwnStamp()
    if (last !== null) this.hlc.restore(last)
    if (stored === undefined) await this.view.write([this.view.putMeta('key', this.key)])
    await this.update()
  }

  async close (): Promise<void> {
    this.closing = true
    await this.queue.catch(() => {})
    for (const w of this.writers.values()) await w.bee.close().catch(() => {})
    await this.store.close()
    await this.view.close()
  }

  private async lastOwnStamp (): Promise<Stamp | null> {
    const core = this.own.core
    for (let i = core.length - 1; i >= 1; i--) {
      const node = await this.own.bee.getBySeq(i).catch(() => null)
      if (node === null) continue
      try {
        return decodeEntry(node.value).stamp
      } catch {
        continue
      }
    }
    return null
  }

  private async openWriter (core: Hypercore): Promise<WriterState> {
    await core.ready()
    const id = hex(core.key)
    const existing = this.writers.get(id)
    if (existing !== undefined) {
      if (existing.core !== core) await core.close()
      return existing
    }
    const bee = new Hyperbee(core, { keyEncoding: 'binary', valueEncoding: 'binary', extension: false })
    await bee.ready()
    // Hyperbee raises the core's request window to 256-512 blocks on open (its nodes are small).
    // A whole-log download then asks for hundreds of blocks before any proof has landed, so each
    // request carries a proof up to the root: on a 500-block log, 8 tree nodes per block instead
    // of ~1, read, sent, hashed and stored. Hypercore's own window (16 blocks, widened with the
    // link's round-trip time) cuts a whole-log download's CPU time by a third (BENCHMARKS.md);
    // a sparse fetch, whose requests are few and latency-bound, gets the wide window back.
    setWindow(core, INFLIGHT)
    const w: WriterState = { key: core.key, core, bee, records: new Map(), mlen: 0, maxSkew: 0, poison: Infinity, signed: [core.length], sparse: 0, fetching: false, noSparseUntil: 0, bulk: null }
    this.writers.set(id, w)
    if (this.own !== undefined) {
      // another peer's log: keep all of it, fold as it grows (it may share our Corestore)
      if (!core.writable) this.resumeBulk(w)
      const wake = (): void => { this.schedule() }
      core.on('append', () => {
        w.signed.push(core.length)
        this.maybeFetch(w)
        wake()
      })
      // during a sparse fetch the fetch itself schedules the fold, once, when all its blocks are in
      core.on('download', () => { if (!w.fetching && this.movable(w, id)) wake() })
    }
    return w
  }

  /**
   * Whether the blocks now held let a fold move `w` on: folds stop only at signed lengths (or a
   * removal's cut), so a block that completes none of them changes nothing. A whole-log download
   * of 500 blocks announced in one upgrade wakes one fold instead of hundreds.
   */
  private movable (w: WriterState, id: string): boolean {
    const contiguous = w.core.contiguousLength
    if (contiguous >= w.core.length) return true
    const floor = Math.min(w.mlen, this.checkpoints.get(id) ?? 0)
    for (const n of w.signed) if (n > floor && n <= contiguous) return true
    const cut = this.members.get(id)?.cut ?? Infinity
    return cut > floor && cut <= contiguous
  }

  /** Downloads all of a remote log, live (every peer seeds every member's whole log). */
  private resumeBulk (w: WriterState): void {
    if (w.bulk !== null || w.core.writable || this.closing) return
    w.bulk = w.core.download({ start: 0, end: -1 }) as { destroy: () => void }
  }

  private pauseBulk (w: WriterState): void {
    w.bulk?.destroy()
    w.bulk = null
  }

  /**
   * Starts a sparse catch-up of `w` if its signed length runs `sparseAfter` blocks or more ahead
   * of both its checkpoint and its contiguous length (or any amount, once the checkpoint itself
   * lies past the contiguous length): fetch only the blocks the fold's diff will read, with the
   * whole-log download paused so they come first, then fold. Any failure (a peer gone, a malformed
   * block) falls back to downloading the log whole.
   */
  private maybeFetch (w: WriterState): void {
    if (w.fetching || this.closing || w.core.writable) return
    const id = hex(w.key)
    const m = this.members.get(id)
    if (m === undefined || m.removed || w.poison !== Infinity) return
    const from = this.checkpoints.get(id) ?? 0
    const to = w.core.length
    const contiguous = w.core.contiguousLength
    // after a failure or a miss, wait for the whole-log download to pass that length
    if (to <= w.sparse || contiguous < w.noSparseUntil) return
    // A checkpoint past the contiguous length was reached sparsely: the fold cannot move on from
    // it until the download reaches it, so any later append is fetched the same way.
    const threshold = from > contiguous ? 1 : this.sparseAfter
    if (to - Math.max(from, contiguous) < threshold) return
    w.fetching = true
    this.pauseBulk(w)
    setWindow(w.core, SPARSE_INFLIGHT)
    this.fetchDiff(w, from, to, from > contiguous ? Infinity : to - contiguous).then((fetched) => {
      if (fetched === null) {
        // most of the gap is needed anyway: the whole-log download brings it faster (see fetchDiff)
        w.noSparseUntil = to
        this.stats.sparseSkipped++
        return
      }
      // the whole-log download resumes once a fold has read these blocks (see fold)
      this.stats.sparseFetches++
      this.stats.sparseBlocks += fetched
      if (to > w.sparse) w.sparse = to
    }, (err: unknown) => {
      w.noSparseUntil = to
      if (!this.closing) this.log.debug({ writer: id, err }, 'sparse catch-up failed; downloading the whole log')
    }).finally(() => {
      w.fetching = false
      setWindow(w.core, INFLIGHT)
      if (this.closing) return
      if (w.sparse < to) this.resumeBulk(w)
      this.schedule()
    })
  }

  /**
   * Fetches the blocks a Hyperbee diff from length `from` to `to` of `w` reads: the tree at `to`
   * without its subtrees written before `from` (the tree at `from` is local, since every fold
   * reads the whole changed part of its tree), and the entries of the keys in it written since.
   * A tree walk by levels, each level's blocks requested at once. Returns the blocks fetched, or
   * null without fetching the entries when they and the tree would make up half of the `gap`
   * blocks not held or more: a log with few overwrites. Block by block requests cost more than
   * the whole-log download (which also sends shorter proofs), so that download is left to bring
   * them. On a first sight of a log (`from` 0) the tree's size is estimated from its newest
   * block alone, before any walk. A checkpoint past the contiguous length (`gap` Infinity) is
   * always fetched: the download cannot reach it soon.
   */
  private async fetchDiff (w: WriterState, from: number, to: number, gap: number): Promise<number | null> {
    const core = w.core
    const indexes = new Map<number, TreeLevel[]>()
    const want = new Set<number>()
    let fetched = 0
    const load = async (seqs: number[]): Promise<void> => {
      await Promise.all(seqs.map(async (seq) => {
        if (!(await core.has(seq))) fetched++
        const block = await core.get(seq, { timeout: FETCH_TIMEOUT })
        if (block === null) throw new Error(`block ${seq} is not available`)
        indexes.set(seq, treeLevels(block))
      }))
    }
    await load([to - 1])
    if (from === 0 && 2 * treeSizeEstimate(indexes.get(to - 1) as TreeLevel[]) >= gap) return null
    let level: Array<[number, number]> = [[to - 1, 0]]
    const seen = new Set<string>()
    while (level.length > 0) {
      await load([...new Set(level.map(([seq]) => seq))].filter((seq) => !indexes.has(seq)))
      const next: Array<[number, number]> = []
      for (const [seq, offset] of level) {
        const node = (indexes.get(seq) as TreeLevel[])[offset]
        if (node === undefined) throw new Error(`block ${seq} has no tree node ${offset}`)
        for (const k of node.keys) if (k >= from && k <= seq) want.add(k)
        for (let j = 0; j + 1 < node.children.length; j += 2) {
          const [cs, co] = [node.children[j], node.children[j + 1]]
          const id = `${cs}/${co}`
          if (cs < from || cs > seq || seen.has(id)) continue
          seen.add(id)
          next.push([cs, co])
        }
      }
      level = next
    }
    const entries = [...want].filter((seq) => !indexes.has(seq))
    if (2 * (indexes.size + entries.length) >= gap) return null
    await load(entries)
    return fetched
  }

  /** Runs `fn` after every earlier locked task: folds and own writes never interleave. */
  private locked<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.closing) throw closed()
      return await fn()
    })
    this.queue = run.catch(() => {})
    return run
  }

  /** Coalesces bursts of remote appends into one fold. */
  schedule (): void {
    if (this.closing || this.pending !== null) return
    this.update().catch((err: unknown) => {
      if (!this.closing) this.log.error({ err }, 'fold failed')
    })
  }

  /** Folds everything available locally now. Resolves true if the view changed. */
  update (): Promise<boolean> {
    if (this.pending !== null) return this.pending
    const p = this.locked(async () => {
      this.pending = null
      return await this.fold()
    })
    this.pending = p
    p.catch(() => {}).finally(() => { if (this.pending === p) this.pending = null })
    return p
  }

  private async target (w: WriterState): Promise<number> {
    const m = this.members.get(hex(w.key))
    if (m === undefined) return 0
    // A removal's cut and a malformed block's index come from the logs' bytes, the same on every
    // peer (an honest remover records a length it folded: a signed one); `readable` keeps a
    // forged cut deterministic too. Otherwise the fold stops only at signed lengths.
    const fixed = Math.min(m.cut, w.poison)
    if (fixed <= w.core.contiguousLength) return await this.readable(w, fixed)
    return this.signedAtMost(w, this.reach(w, fixed), this.checkpoints.get(hex(w.key)) ?? 0)
  }

  /** How far `w`'s log can be read with local blocks only: its contiguous length, or a sparse fetch's. */
  private reach (w: WriterState, fixed: number): number {
    const contiguous = w.core.contiguousLength
    return w.sparse <= fixed && w.sparse > contiguous ? w.sparse : contiguous
  }

  /**
   * The largest signed length of `w` up to `len`, or `floor` (a length already read) if none is
   * known. A peer that holds part of an append (part of a batch) waits for the rest.
   */
  private signedAtMost (w: WriterState, len: number, floor: number): number {
    if (w === this.own) return Math.min(len, w.core.length)
    let best = floor
    for (const n of w.signed) if (n <= len && n > best) best = n
    // The list serves two readers with their own floors: the membership read (mlen) and the data
    // fold (the checkpoint). Drop only lengths neither can still need; pruning by this caller's
    // `best` lost the length the other one was waiting for, and its fold stalled until the next append.
    if (w.signed.length > 64) {
      const done = Math.min(w.mlen, this.checkpoints.get(hex(w.key)) ?? 0)
      w.signed = w.signed.filter((n) => n > done)
    }
    return best
  }

  /**
   * The largest length up to `len` at which `w`'s Hyperbee can be read. A Hyperbee batch appends
   * its nodes together and only the last one carries the B-tree index: a peer that has downloaded
   * part of a batch holds a length that ends inside it, where there is no tree to read. Such a log
   * counts up to its last whole batch (so a batch also arrives whole). Depends only on the bytes.
   * A block that is no Hyperbee node at all stops the search: reading there fails and `guarded`
   * caps the log.
   */
  private async readable (w: WriterState, len: number): Promise<number> {
    let end = len
    while (end > 1) {
      const block = await w.core.get(end - 1, { wait: false })
      if (block === null || !innerBatchNode(block)) break
      end--
    }
    return end
  }

  private async refreshMembership (): Promise<void> {
    // Open a log only once an add of it counts: a stranger's or an ex-member's add entries never
    // make this peer fetch anything. Records of a log that is not a member never count, so the
    // members found are the same whichever extra logs a peer happens to have open.
    let members: Map<string, Member>
    while (true) {
      for (const w of [...this.writers.values()]) {
        // The floor includes the checkpoint, a length the data fold already read (so its tree is
        // held, even past the contiguous length after a sparse catch-up): after a restart `mlen`
        // is 0 and the only signed length known may lie beyond what is held.
        const len = w.poison <= w.core.contiguousLength
          ? await this.readable(w, w.poison)
          : this.signedAtMost(w, this.reach(w, w.poison), Math.max(w.mlen, this.checkpoints.get(hex(w.key)) ?? 0))
        if (len !== w.mlen) await this.guarded(w, w.mlen, len, async () => { await this.readMembership(w, len) })
      }
      members = resolveMembers(this.key, [...this.writers.values()].flatMap((w) => [...w.records.values()]))
      const missing = [...members.keys()].filter((id) => !this.writers.has(id))
      if (missing.length === 0) break
      for (const id of missing) await this.openWriter(this.store.get({ key: Buffer.from(id, 'hex') }))
    }
    const before = this.members
    this.members = members
    for (const [id, m] of this.members) {
      const was = before.get(id)
      if (was === undefined) this.emit('writer-add', Buffer.from(id, 'hex'))
      if (m.removed && (was === undefined || !was.removed)) this.emit('writer-remove', Buffer.from(id, 'hex'), m.cut)
    }
  }

  private async readMembership (w: WriterState, len: number): Promise<void> {
    for (const c of await this.changes(w, w.mlen, len, MEMBERSHIP_RANGE)) {
      const id = hex(c.key)
      if (c.value === null) {
        w.records.delete(id)
        continue
      }
      try {
        const entry = decodeMembership(c.key, c.value)
        w.records.set(id, { author: w.key, seq: c.seq, entry })
        // observed like a data entry: an entry this peer writes after it is stamped after it, so a
        // member added by a peer whose clock runs ahead does not stamp its own membership entries
        // before its own add (where the replay would not count them)
        this.observe(w, entry.stamp)
      } catch (err) {
        w.records.delete(id)
        this.skip(w, c.seq, err)
      }
    }
    w.mlen = len
  }

  /**
   * The bee keys in `range` whose latest entry differs between lengths `from` and `to` of `w`'s
   * log, each with its entry at `to` (value null: none). A Hyperbee diff between the two
   * versions, which costs the changed keys however long the history between them. For a short
   * step forward — the live case, a few appends — reading the appended blocks themselves is
   * cheaper than opening two tree snapshots: a key changed iff a block in between wrote it, and
   * its last such block is its entry at `to`.
   */
  private async changes (w: WriterState, from: number, to: number, range: { gte: Buffer, lt: Buffer }): Promise<Array<{ key: Buffer, seq: number, value: Buffer | null }>> {
    if (to > from && (to - from <= SCAN_LIMIT || await this.dense(w, from, to))) {
      const scanned = await this.scan(w, from, to, range)
      if (scanned !== null) return scanned
    }
    const out: Array<{ key: Buffer, seq: number, value: Buffer | null }> = []
    const snap = w.bee.checkout(Math.max(1, to))
    try {
      // wait: false — a fold reads local blocks only and never waits on the network
      for await (const { left, right } of snap.createDiffStream(from, range, { wait: false })) {
        const node = left ?? right as NonNullable<typeof right>
        out.push({ key: node.key, seq: left?.seq ?? node.seq, value: left === null ? null : left.value })
      }
    } finally {
      await snap.close()
    }
    return out
  }

  /**
   * Whether the blocks [from, to) of `w`'s log, all held, mostly add keys its tree did not have (a
   * log of distinct keys, such as a peer's offline writes seen for the first time). Reading those
   * blocks one by one then costs less than a diff, which walks the tree down to each of them: a
   * 500-block log of new keys scans in a fraction of the diff's time. Judged from the two ends'
   * tree-size estimates (treeSizeEstimate), so a log that overwrites (a hot key in a large tree,
   * a catch-up over many overwrites) keeps the diff, whose cost is the keys that changed.
   */
  private async dense (w: WriterState, from: number, to: number): Promise<boolean> {
    if (to > w.core.contiguousLength) return false
    const size = async (len: number): Promise<number | null> => {
      if (len <= 1) return 0
      const block = await w.core.get(len - 1, { wait: false })
      if (block === null) return null
      try {
        return treeSizeEstimate(treeLevels(block))
      } catch {
        return null
      }
    }
    const [before, after] = [await size(from), await size(to)]
    if (before === null || after === null) return false
    const gap = to - from
    return after <= 2 * gap && after - before >= gap / 2
  }

  /** The blocks [from, to) read as Hyperbee nodes, last write per key; null if one is not a node. */
  private async scan (w: WriterState, from: number, to: number, range: { gte: Buffer, lt: Buffer }): Promise<Array<{ key: Buffer, seq: number, value: Buffer | null }> | null> {
    const latest = new Map<string, { key: Buffer, seq: number, value: Buffer | null }>()
    // blocks are read SCAN_READS at a time: one by one, each read waits a turn of an event loop
    // that replication may keep busy
    let blocks: Array<Uint8Array | null> = []
    for (let seq = Math.max(1, from); seq < to; seq++) {
      const i = (seq - Math.max(1, from)) % SCAN_READS
      if (i === 0) {
        blocks = await readBlocks(w.core, seq, Math.min(to, seq + SCAN_READS))
      }
      const block = blocks[i]
      if (block === null || block === undefined) return null
      let node: { key: Uint8Array, value?: Uint8Array | null }
      try {
        node = messages.Node.decode(block)
      } catch {
        return null
      }
      if (!(node.key instanceof Uint8Array)) return null
      const key = buf(node.key)
      if (Buffer.compare(key, range.gte) < 0 || Buffer.compare(key, range.lt) >= 0) continue
      latest.set(key.toString('hex'), { key, seq, value: node.value instanceof Uint8Array ? buf(node.value) : null })
    }
    return [...latest.values()]
  }

  private skip (w: WriterState, seq: number, err: unknown): void {
    this.stats.badEntries++
    this.log.warn({ writer: hex(w.key), seq, err: (err as Error).message }, 'skipped a bad entry')
  }

  private async fold (): Promise<boolean> {
    let changed = false
    for (let pass = 0; pass < 4; pass++) {
      const poisoned = this.poisonings
      if (await this.foldOnce()) changed = true
      if (this.poisonings === poisoned) break
    }
    // Once a fold has read what a sparse fetch brought (or could not use it: a removal cut below
    // it), the rest of the log downloads again: every peer seeds every member's whole log.
    for (const w of this.writers.values()) if (!w.fetching) this.resumeBulk(w)
    return changed
  }

  /**
   * Runs a read of writer `w`'s log between two lengths. If the log is not a readable Hyperbee
   * there, finds its first malformed block: from then on the log counts only up to that block.
   * That rule depends only on the log's bytes, so every peer caps the log at the same place.
   * Returns false if the read failed (the caller retries on the next pass).
   */
  private async guarded (w: WriterState, from: number, to: number, read: () => Promise<void>): Promise<boolean> {
    try {
      await read()
      return true
    } catch (err) {
      if (this.closing) throw err
      const bad = await this.firstMalformed(w, Math.min(from, w.mlen), to)
      if (bad === null) {
        if (w.sparse > w.core.contiguousLength) {
          // a sparse fetch missed a block the read needed: read the log as it downloads instead
          this.log.debug({ writer: hex(w.key), from, to, err }, 'a sparse catch-up missed a block; folding as the log downloads')
          w.noSparseUntil = Math.max(w.sparse, to)
          w.sparse = 0
          this.resumeBulk(w)
          this.poisonings++ // another pass, with the contiguous target
          return false
        }
        this.log.error({ writer: hex(w.key), from, to, err }, 'cannot read a writer log; it is skipped in this fold')
        return false
      }
      w.poison = bad
      this.poisonings++
      this.stats.badEntries++
      this.log.warn({ writer: hex(w.key), block: bad }, 'malformed block in a writer log: the log counts up to it')
      return false
    }
  }

  private async firstMalformed (w: WriterState, from: number, to: number): Promise<number | null> {
    for (let i = Math.max(0, from - 1); i < to; i++) {
      const block = await w.core.get(i, { wait: false })
      if (block === null) return null
      if (!wellFormed(block, i)) return i
    }
    return null
  }

  /**
   * One fold: every writer's diff from its checkpoint to its target, merged into the view. A small
   * fold commits once. A large one (a catch-up over many writers) commits after each writer whose
   * diff brings the staged keys to FOLD_CHUNK, so memory stays bounded by the chunk and the largest
   * single diff. Every commit is atomic and carries the checkpoints of exactly the writers whose
   * diffs it completes; a writer's diff is never split, and a fold in which a cut moves back (a
   * removal) commits once, so each state a reader can see is the view of a set of cuts that every
   * committed membership entry agrees with (invariants 1 and 4 hold commit by commit).
   */
  private async foldOnce (): Promise<boolean> {
    this.stats.folds++
    await this.refreshMembership()
    for (const w of this.writers.values()) this.maybeFetch(w)
    const changed = new Map<string, { key: Buffer, slots: Map<string, Uint8Array | null> }>()
    const done = new Map<string, number>()
    let viewChanged = false
    const flush = async (): Promise<void> => {
      const staged = new Staged(this.digest)
      for (const { key, slots: updates } of changed.values()) {
        let slots = this.view.getSlotsSync(key)
        for (const [id, entry] of updates) slots = setSlot(slots, Buffer.from(id, 'hex'), entry)
        if (this.stage(staged, key, slots)) viewChanged = true
        this.stats.keysMerged++
      }
      for (const [id, len] of done) staged.ops.push(this.view.putCheckpoint(Buffer.from(id, 'hex'), len))
      await this.commit(staged)
      for (const [id, len] of done) this.checkpoints.set(id, len)
      changed.clear()
      done.clear()
    }
    const steps: Array<{ id: string, w: WriterState, from: number, to: number }> = []
    for (const id of [...this.writers.keys()].sort()) {
      const w = this.writers.get(id) as WriterState
      const from = this.checkpoints.get(id) ?? 0
      const to = await this.target(w)
      if (to !== from) steps.push({ id, w, from, to })
    }
    // A cut moving back (a removal) must land in the same commit as the remover's checkpoint, or
    // a reader could see the removal counted and the removed writer's later entries still in.
    const chunked = steps.every(({ from, to }) => to > from)
    for (const { id, w, from, to } of steps) {
      const found: Array<{ key: Buffer, entry: Uint8Array | null }> = []
      const ok = await this.guarded(w, from, to, async () => {
        for (const c of await this.changes(w, from, to, DATA_RANGE)) {
          found.push({ key: c.key.subarray(1), entry: c.value === null ? null : this.validate(w, c.seq, c.key, c.value) })
        }
      })
      if (!ok) continue
      for (const { key, entry } of found) {
        const kid = key.toString('hex')
        let c = changed.get(kid)
        if (c === undefined) changed.set(kid, c = { key, slots: new Map() })
        c.slots.set(id, entry)
        this.stats.diffEntries++
      }
      done.set(id, to)
      if (chunked && changed.size >= FOLD_CHUNK) await flush()
    }
    if (changed.size > 0 || done.size > 0) await flush()
    if (viewChanged) this.emit('update')
    return viewChanged
  }

  /** Stages one key's new slots and rendered value; true if the rendered value changed. */
  private stage (staged: Staged, key: Buffer, slots: Slot[]): boolean {
    const before = this.view.getValueSync(key)
    const after = render(this.merged(slots))
    staged.ops.push(this.view.putSlots(key, slots))
    if (before === undefined ? after === null : after !== null && before.equals(after)) return false
    staged.ops.push(this.view.putValue(key, after))
    staged.digest = replaceEntry(staged.digest, key, before, after)
    return true
  }

  /**
   * Commits a staged batch with the digest (and the clock) in one atomic write. An own write leaves
   * the clock out: its entry, the newest stamp, is in the own log, which open() reads back.
   */
  private async commit (staged: Staged, clock = true): Promise<void> {
    if (clock) staged.ops.push(this.view.putStamp(this.hlc.last))
    staged.ops.push(this.view.putMeta('hash', digestToBuffer(staged.digest)))
    await this.view.write(staged.ops)
    this.digest = staged.digest
  }

  /** The entry if it is valid, else null (and counted). Observes remote stamps into the clock. */
  private validate (w: WriterState, seq: number, beeKey: Uint8Array, value: Uint8Array): Uint8Array | null {
    let e: DataEntry
    try {
      e = decodeData(beeKey, value)
      slotState(e, w.key)
    } catch (err) {
      this.skip(w, seq, err)
      return null
    }
    this.observe(w, e.stamp)
    return value
  }

  /** Observes a remote entry's stamp into the clock (bounded by maxDrift). */
  private observe (w: WriterState, stamp: Stamp): void {
    if (w === this.own) return
    const skew = stamp.wall - this.wallClock()
    if (skew > w.maxSkew) w.maxSkew = skew
    if (this.hlc.observe(stamp).clamped) {
      this.stats.clampedStamps++
      this.log.warn({ writer: hex(w.key), skew }, 'remote clock runs ahead beyond maxDrift')
    }
  }

  /** The merged key state of a list of slots. Slots hold only entries that validated. */
  merged (slots: Slot[]): KeyState {
    return mergeAll(slots.map((s) => this.slotOf(s)))
  }

  private slotOf (s: Slot): KeyState {
    return slotState(decodeEntry(s.entry) as DataEntry, s.writer)
  }

  writerInfo (): WriterInfo[] {
    return [...this.writers.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([id, w]) => {
      const m = this.members.get(id)
      return {
        key: buf(w.key),
        length: w.core.length,
        cut: m === undefined ? 0 : Math.min(m.removed ? m.cut : w.core.length, w.poison),
        folded: this.checkpoints.get(id) ?? 0,
        member: m !== undefined,
        removed: m?.removed ?? false,
        maxSkew: w.maxSkew,
        local: w === this.own
      }
    })
  }

  /** What `key` holds in the view: a whole value, a document, a set, or nothing. */
  kindOf (key: Uint8Array): 'value' | 'doc' | 'set' | undefined {
    const k = kind(this.merged(this.view.getSlotsSync(key)))
    return k === 'none' ? undefined : k
  }

  /** Every member's latest entry for `key` at its cut, the winner (greatest version) first. */
  async versions (key: Uint8Array): Promise<EntryVersion[]> {
    const slots = this.view.getSlotsSync(key)
    return slots.map((s) => describeEntry(decodeEntry(s.entry) as DataEntry, s.writer))
      .sort((a, b) => compareVersions({ stamp: b.stamp, writer: b.writer }, { stamp: a.stamp, writer: a.writer }))
  }

  /**
   * How far `diff()` and `checkout()` read `w`'s log: its contiguous blocks, and up to its checkpoint
   * after a sparse catch-up (that tree is held); blocks in between that a read needs are fetched
   * from peers, with a time limit.
   */
  private held (w: WriterState): number {
    return Math.max(w.core.contiguousLength, this.checkpoints.get(hex(w.key)) ?? 0)
  }

  /** The data entries of a writer's log that differ between two lengths, one per key. */
  async * diff (writer: Uint8Array, from: number, to: number | undefined, since: Stamp | undefined): AsyncGenerator<Change> {
    const w = this.writers.get(hex(writer))
    if (w === undefined) throw new MeshError('MESHBEE_INVALID_KEY', `Unknown writer ${hex(writer)}`)
    const avail = Math.min(this.held(w), w.poison)
    const end = to === undefined && w.poison > avail
      ? this.signedAtMost(w, avail, this.checkpoints.get(hex(w.key)) ?? 0)
      : await this.readable(w, Math.min(to ?? avail, avail))
    let start = Math.min(Math.max(0, from), end)
    if (since !== undefined) start = Math.max(start, await this.firstSince(w, since, end))
    const snap = w.bee.checkout(Math.max(1, end))
    try {
      for await (const { left, right } of snap.createDiffStream(start, DATA_RANGE, { timeout: FETCH_TIMEOUT })) {
        const node = left ?? right as NonNullable<typeof right>
        const now = left === null ? null : safeDescribe(left.key, left.value, w.key)
        const before = right === null ? null : safeDescribe(right.key, right.value, w.key)
        yield {
          key: node.key.subarray(1),
          type: now === null ? 'gone' : now.type,
          value: now?.value ?? null,
          previous: before?.value ?? null,
          stamp: now?.stamp ?? null,
          seq: left?.seq ?? null
        }
      }
    } finally {
      await snap.close()
    }
  }

  /** The first index of `w`'s log whose entry is stamped at or after `since` (stamps grow along a log). */
  private async firstSince (w: WriterState, since: Stamp, end: number): Promise<number> {
    let lo = 1
    let hi = end
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      // (Hyperbee's getBySeq ignores per-call options: read the block itself, with a time limit)
      const block = await w.core.get(mid, { timeout: FETCH_TIMEOUT }).catch(() => null)
      let st: Stamp | null = null
      try {
        const value = block === null ? null : messages.Node.decode(block).value
        if (value instanceof Uint8Array) st = decodeEntry(value).stamp
      } catch {}
      if (st !== null && compareStamps(st, since) >= 0) hi = mid
      else lo = mid + 1
    }
    return lo
  }

  /**
   * The view as it was at the given cuts (writer hex key → length): membership and data both
   * replayed from the logs truncated there. Returns the rendered entries, sorted by key.
   */
  async materialize (cuts: Map<string, number>): Promise<Array<[Buffer, Buffer]>> {
    const lengthOf = (w: WriterState): number => Math.min(cuts.get(hex(w.key)) ?? 0, this.held(w), w.poison)
    const records: MembershipRecord[] = []
    for (const w of this.writers.values()) {
      const len = lengthOf(w)
      for (const r of w.records.values()) if (r.seq < len) records.push(r)
    }
    const members = resolveMembers(this.key, records)
    const slots = new Map<string, { key: Buffer, slots: Slot[] }>()
    for (const [id, m] of members) {
      const w = this.writers.get(id)
      if (w === undefined) continue
      const len = await this.readable(w, Math.min(lengthOf(w), m.cut))
      if (len <= 1) continue
      const snap = w.bee.checkout(len)
      try {
        for await (const node of snap.createReadStream(DATA_RANGE, { timeout: FETCH_TIMEOUT })) {
          let ok = true
          try {
            slotState(decodeData(node.key, node.value), w.key)
          } catch {
            ok = false
          }
          if (!ok) continue
          const key = node.key.subarray(1)
          const kid = key.toString('hex')
          let e = slots.get(kid)
          if (e === undefined) slots.set(kid, e = { key, slots: [] })
          e.slots.push({ writer: w.key, entry: node.value })
        }
      } finally {
        await snap.close()
      }
    }
    const out: Array<[Buffer, Buffer]> = []
    for (const { key, slots: list } of slots.values()) {
      const v = render(this.merged(list))
      if (v !== null) out.push([key, buf(v)])
    }
    return out.sort((a, b) => Buffer.compare(a[0], b[0]))
  }

  /** Appends own writes as one atomic batch and folds them into the view before resolving. */
  write (ops: WriteOp[]): Promise<void> {
    return this.locked(async () => {
      if (!this.writable) throw notWritable()
      this.view.check() // a view that cannot commit refuses the write before it reaches the log
      const ownId = hex(this.own.key)
      if ((this.checkpoints.get(ownId) ?? 0) !== this.own.core.length) await this.fold()

      const keys = new Map<string, { key: Buffer, slots: Slot[] }>()
      const appends: Array<[Buffer, Buffer]> = []
      for (const op of ops) {
        if (op.key.byteLength > MAX_KEY_BYTES) throw tooLarge('A key', op.key.byteLength, MAX_KEY_BYTES)
        const kid = hex(op.key)
        let k = keys.get(kid)
        if (k === undefined) keys.set(kid, k = { key: buf(op.key), slots: this.view.getSlotsSync(op.key) })
        const entry = encodeEntry(this.entryFor(op, k.slots))
        if (entry.byteLength > MAX_VALUE_BYTES + 64) throw tooLarge('An entry', entry.byteLength, MAX_VALUE_BYTES)
        appends.push([dataKey(op.key), entry])
        k.slots = setSlot(k.slots, this.own.key, entry)
      }
      if (appends.length === 0) return

      const batch = this.own.bee.batch()
      for (const [k, v] of appends) await batch.put(k, v)
      // The log's length once the append lands: the header (if any) is written by the first put.
      const len = this.own.core.length + (batch as unknown as { length: number }).length
      // The view's commit is staged while the append is written, and made once it has landed (the
      // view never holds an entry its log lacks). A process that dies in between refolds the entry.
      // Staging waits a turn of the event loop first: flush() returns at its first await, long
      // before the append (signing, hashing, the storage write) is on its way, and staging right
      // away would hold all of that up (an awaited put: 0.78 -> 0.84-0.91 x Hyperbee's in an A/B).
      const flushing = batch.flush()
      flushing.catch(() => {}) // awaited below; not unhandled meanwhile
      await new Promise((resolve) => setImmediate(resolve))
      const staged = new Staged(this.digest)
      let viewChanged = false
      for (const { key, slots } of keys.values()) if (this.stage(staged, key, slots)) viewChanged = true
      staged.ops.push(this.view.putCheckpoint(this.own.key, len))
      await flushing
      if (this.own.core.length !== len) {
        this.log.error({ expected: len, length: this.own.core.length }, 'own append landed at an unexpected length')
        await this.fold()
        return
      }
      await this.commit(staged, false)
      this.checkpoints.set(ownId, len)
      if (viewChanged) this.emit('update')
    })
  }

  private entryFor (op: WriteOp, slots: Slot[]): DataEntry {
    const stamp = this.hlc.now()
    const writer = this.own.key
    const mine = slots.find((s) => buf(s.writer).equals(writer))
    const own = mine === undefined ? EMPTY : this.slotOf(mine)
    let next: KeyState
    switch (op.type) {
      case 'put':
        if (op.value.byteLength > MAX_VALUE_BYTES) throw tooLarge('A value', op.value.byteLength, MAX_VALUE_BYTES)
        next = { ...own, reg: { stamp, writer, value: op.value } }
        break
      case 'del':
        next = { ...own, reg: { stamp, writer, value: null } }
        break
      case 'patch': {
        const fields = new Map(own.fields)
        for (const [name, value] of op.fields) fields.set(name, { stamp, writer, value: value === undefined ? null : [value] })
        next = { ...own, fields }
        break
      }
      case 'sadd': {
        const adds = new Map(own.adds)
        const tag = { stamp, writer }
        adds.set(tagId(tag), { tag, member: op.member })
        next = { ...own, adds }
        break
      }
      case 'srem': {
        const all = this.merged(slots)
        const adds = new Map(own.adds)
        const removed = new Map(own.removed)
        for (const tag of tagsOf(all.adds, all.removed, op.member)) {
          const id = tagId(tag)
          adds.delete(id)
          removed.set(id, tag)
        }
        next = { ...own, adds, removed }
        break
      }
    }
    next = normalize(next)
    const reg = next.reg
    const plain = next.fields.size === 0 && next.adds.size === 0 && next.removed.size === 0 &&
      reg !== null && reg.stamp === stamp && buf(reg.writer).equals(writer)
    if (plain) return reg.value === null ? { type: DEL, stamp } : { type: PUT, stamp, value: reg.value }
    return { type: STATE, stamp, state: encodeState(next) }
  }

  /**
   * A stamp for an own membership entry. The replay counts an entry only if its author is a member
   * at that point of the stamp order, so the entry must sort after the add that made this peer a
   * member. The clock has observed that add, but only up to maxDrift ahead of the wall clock: if
   * the adder's clock ran further ahead, refuse rather than append an entry that never counts.
   */
  private membershipStamp (): Stamp {
    const stamp = this.hlc.now()
    const since = this.members.get(hex(this.own.key))?.since ?? null
    if (since !== null && compareStamps(stamp, since) <= 0) throw clockBehind(since.wall - this.wallClock())
    return stamp
  }

  /** Appends a membership entry to the own log and folds it. */
  changeMembership (type: typeof ADD_WRITER | typeof REMOVE_WRITER, target: Uint8Array): Promise<void> {
    return this.locked(async () => {
      if (!this.writable) throw notWritable()
      await this.fold()
      const id = hex(target)
      const m = this.members.get(id)
      if (type === ADD_WRITER) {
        if (m !== undefined && m.removed) throw writerRemoved(id)
        if (this.own.records.has(hex(membershipKey(ADD_WRITER, target)))) return
        if (m !== undefined) return
        await this.own.bee.put(membershipKey(ADD_WRITER, target), encodeEntry({ type, stamp: this.membershipStamp(), writer: target }))
      } else {
        if (m === undefined) throw new MeshError('MESHBEE_INVALID_KEY', `Writer ${id} is not a member`)
        if (m.removed) return
        const length = this.checkpoints.get(id) ?? 0
        await this.own.bee.put(membershipKey(REMOVE_WRITER, target), encodeEntry({ type, stamp: this.membershipStamp(), writer: target, length }))
      }
      await this.fold()
    })
  }
}

/** The tree path a Hyperbee block carries: its index's nodes, root first (throws if it is no node). */
function treeLevels (block: Uint8Array): TreeLevel[] {
  return messages.YoloIndex.decode(messages.Node.decode(block).index).levels
}

/** Whether a block is a Hyperbee node without an index: any node of a batch but its last. */
function innerBatchNode (block: Uint8Array): boolean {
  try {
    return treeLevels(block).length === 0
  } catch {
    return false
  }
}

/**
 * Whether block `i` of a log decodes as a Hyperbee block whose pointers all point backwards. A
 * node with an empty index is well-formed: it is a node of a batch other than the last.
 */
export function wellFormed (block: Uint8Array, i: number): boolean {
  try {
    if (i === 0) return messages.Header.decode(block).protocol === 'hyperbee'
    const node = messages.Node.decode(block)
    if (!(node.key instanceof Uint8Array) || !(node.index instanceof Uint8Array)) return false
    const { levels } = messages.YoloIndex.decode(node.index)
    for (const l of levels) {
      if (l.children.length % 2 !== 0) return false
      for (const seq of l.keys) if (!(seq <= i && seq >= 1)) return false
      for (let j = 0; j < l.children.length; j += 2) if (!(l.children[j] <= i && l.children[j] >= 1)) return false
    }
    return true
  } catch {
    return false
  }
}

function describeEntry (e: DataEntry, writer: Uint8Array): EntryVersion {
  const w = buf(writer)
  switch (e.type) {
    case PUT: return { writer: w, stamp: e.stamp, type: 'put', value: buf(e.value) }
    case DEL: return { writer: w, stamp: e.stamp, type: 'del', value: null }
    default: {
      const v = render(slotState(e, writer))
      return { writer: w, stamp: e.stamp, type: 'state', value: v === null ? null : buf(v) }
    }
  }
}

function safeDescribe (beeKey: Uint8Array, value: Uint8Array, writer: Uint8Array): EntryVersion | null {
  try {
    return describeEntry(decodeData(beeKey, value), writer)
  } catch {
    return null
  }
}
