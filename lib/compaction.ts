/**
 * Log compaction: clears, on this peer, the blocks of a writer log that no read can need.
 *
 * A log is cleared below its horizon: the lesser of this peer's checkpoint and the log's stable
 * frontier (lib/stability.ts), so every live writer has folded at least that far. Below it, the
 * blocks kept are those the B-tree at the horizon references (its nodes and each key's latest
 * entry), and the header. Every read a fold makes starts from a checkpoint at or past the horizon
 * (a member's fold, by its record; a removal's cut, recorded by a member at or past its own
 * record) or from the latest tree (a fresh peer's catch-up): a node such a tree references that
 * lies below the horizon was in the tree at the horizon too (a B-tree node, once replaced, is
 * never referenced again), so it was kept. Blocks at or past the horizon are all kept.
 *
 * Hypercore keeps each cleared block's place in its Merkle tree: the log stays verifiable and
 * replicates on; peers asking for a cleared block get it from a peer that kept it, if any.
 */
import { readdirSync, statSync, type Dirent } from 'node:fs'
import { join } from 'node:path'
import type Hypercore from 'hypercore'
import type { Logger } from 'pino'
import { compareStamps, type Stamp } from '../crdt/hlc.js'
import { treeLevels, type TreeLevel } from './blocks.js'
import { liveWriter, type Member } from './membership.js'
import { readRecord, type Stability } from './stability.js'
import type { CompactProgress, CompactResult, DiskBytes, Stats } from './types.js'
import { seqBytes, type ViewStore } from './view.js'
import { storedLength, type WriterLog } from './writer-log.js'

/** Where a log's horizon is kept, in its own store: it survives a lost view. */
export const CLEARED = 'meshbee/cleared'
/** Set while a log is being cleared: a run cut short is finished by the next. */
const CLEARING = 'meshbee/clearing'

/** The blocks of `w`'s tree at length `len`: its header, every node and every key's entry. Null if one is not held. */
async function reachable (core: Hypercore, len: number): Promise<Set<number> | null> {
  const keep = new Set<number>([0, len - 1])
  const blocks = new Map<number, TreeLevel[]>()
  let level: Array<[number, number]> = [[len - 1, 0]]
  const seen = new Set<string>()
  while (level.length > 0) {
    const wanted = [...new Set(level.map(([seq]) => seq))].filter((seq) => !blocks.has(seq))
    const read = await Promise.all(wanted.map(async (seq) => await core.get(seq, { wait: false })))
    for (let i = 0; i < wanted.length; i++) {
      const block = read[i]
      if (block === null) return null
      blocks.set(wanted[i], treeLevels(block))
    }
    const next: Array<[number, number]> = []
    for (const [seq, offset] of level) {
      const node = (blocks.get(seq) as TreeLevel[])[offset]
      if (node === undefined) return null
      for (const k of node.keys) keep.add(k)
      for (let j = 0; j + 1 < node.children.length; j += 2) {
        const id = `${node.children[j]}/${node.children[j + 1]}`
        if (seen.has(id)) continue
        seen.add(id)
        keep.add(node.children[j])
        next.push([node.children[j], node.children[j + 1]])
      }
    }
    level = next
  }
  return keep
}

/** What `clearKeepingTree` reaches of a Hypercore session's state (hypercore 11). */
interface StateLike { createWriteBatch?: () => { deleteTreeNode?: (index: number) => void } }

/**
 * Clears blocks [start, end) of `core` and keeps their Merkle tree nodes. Hypercore's `clear`
 * also deletes the nodes of every aligned range it leaves without a block; a peer holding an older
 * length of the log whose roots lay there could then never be proven the new length by this peer
 * (chaos seed 9700094). The nodes cost ~40 bytes a block (BENCHMARKS.md, "Compaction"). The clear's
 * write batch is made to skip node deletions while it runs (the engine's queue holds own appends
 * back meanwhile; other batches never delete nodes but to truncate).
 */
async function clearKeepingTree (core: Hypercore, start: number, end: number): Promise<void> {
  const state = (core as unknown as { state?: StateLike }).state
  const make = state?.createWriteBatch
  if (state === undefined || typeof make !== 'function') {
    await core.clear(start, end)
    return
  }
  const own = Object.hasOwn(state, 'createWriteBatch')
  state.createWriteBatch = function (this: StateLike) {
    const tx = make.call(this)
    tx.deleteTreeNode = () => {}
    return tx
  }
  try {
    await core.clear(start, end)
  } finally {
    if (own) state.createWriteBatch = make
    else delete state.createWriteBatch
  }
}

/** The horizon kept in `core`'s store (0: never compacted). */
export async function loadCleared (core: Hypercore): Promise<number> {
  return await storedLength(core, CLEARED)
}

/**
 * Clears the blocks of `w` below `horizon` that its tree at `horizon` does not reference; the
 * blocks cleared. The horizon is stored first: a process killed midway has cleared only blocks no
 * read needs, and the next compaction clears the rest (`CLEARING` marks a run not finished). Nothing is cleared if a block of the tree
 * is not held here (or cannot be read: an epoch this peer lacks).
 */
export async function clearLog (w: WriterLog, horizon: number, progress?: (done: number, total: number) => void): Promise<number> {
  // a run cut short (a crash) left its horizon stored and `CLEARING` set: it is finished now
  const unfinished = (await w.core.getUserData(CLEARING)) !== null
  if (horizon <= w.clearedTo && unfinished) horizon = w.clearedTo
  else if (horizon <= Math.max(w.clearedTo, 1)) return 0
  let keep: Set<number> | null
  try {
    keep = await reachable(w.core, horizon)
  } catch {
    keep = null
  }
  if (keep === null) return 0
  const raw = seqBytes(horizon)
  await w.core.setUserData(CLEARING, raw)
  await w.core.setUserData(CLEARED, raw)
  w.clearedTo = horizon
  // the held blocks below the horizon that the tree no longer references, a run at a time (blocks
  // an earlier compaction kept may be unreferenced now)
  const bits = (w.core as unknown as { core?: { bitfield?: { get: (i: number) => boolean, firstSet: (i: number) => number } } }).core?.bitfield
  const held = (i: number): boolean => bits === undefined || bits.get(i)
  let cleared = 0
  let i = 1
  while (i < horizon) {
    const next = bits === undefined ? i : bits.firstSet(i)
    if (next === -1 || next >= horizon) break
    i = next
    if (keep.has(i)) {
      i++
      continue
    }
    let j = i + 1
    while (j < horizon && !keep.has(j) && held(j)) j++
    // (every block of the run is held: Hypercore's own count, `diff`, reads 0 on this storage)
    await clearKeepingTree(w.core, i, j)
    cleared += j - i
    i = j
    progress?.(i, horizon)
  }
  progress?.(horizon, horizon)
  await w.core.setUserData(CLEARING, null)
  return cleared
}

/** How often, by default, a writer appends its stability record once its view read new data (ms). */
export const CUTS_EVERY = 30_000
/** How often, at most, automatic compaction runs by default (ms). */
export const AUTO_COMPACT_EVERY = 60_000

/** RocksDB's own info logs (`LOG`, `LOG.old.*`): text about the store, not the store. */
const INFO_LOG = /^LOG(\.old\..*)?$/

/** The bytes of every file under `dir` but RocksDB's info logs (0 if it does not exist). */
export function diskBytes (dir: string): number {
  let total = 0
  let entries: Dirent[]
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) total += diskBytes(p)
    else if (!INFO_LOG.test(e.name)) {
      try {
        total += statSync(p).size
      } catch {}
    }
  }
  return total
}

/** What the compactor needs from the engine, given at construction. */
export interface CompactorHost {
  readonly writers: ReadonlyMap<string, WriterLog>
  readonly checkpoints: ReadonlyMap<string, number>
  readonly stability: Stability
  readonly view: ViewStore
  readonly stats: Stats
  readonly log: Logger
  /** Where the logs and the view live on disk (logs null: a Corestore the app gave). */
  readonly dirs: { logs: string | null, view: string }
  /** 'full': no log block is ever cleared here (read when it runs: the engine learns it on open). */
  history: () => 'full' | 'live'
  /** Told what a compaction (called or automatic) reclaimed, when it reclaimed anything. */
  compacted: (done: { blocksCleared: number, tombstonesCollected: number }) => void
  members: () => ReadonlyMap<string, Member>
  /** Whether this peer may append (its stability record). */
  writable: () => boolean
  /** Compacts the logs' store (RocksDB) after blocks were cleared. */
  compactLogs: () => Promise<unknown>
  /** Appends the own stability record and folds it. */
  record: (vector: Array<[Buffer, number]>) => Promise<void>
  /**
   * A removed writer's last record (see `Stability.lateBound`): appends the own record although
   * this peer may no longer write, and folds it. Absent: none is appended (an encrypted database,
   * whose logs are never cleared; a peer playing an older release).
   */
  farewell?: (vector: Array<[Buffer, number]>) => Promise<void>
  /** The clock's last stamp: every stamp this peer issues later is greater. */
  clock: () => Stamp
}

/** How long a measure of the bytes on disk is reused (ms). */
const DISK_TTL = 1000

/** Elapsed time for the intervals (monotonic: not the HLC's wall clock, which an app may set). */
const now = (): number => performance.now()

/**
 * Compaction as a whole (`db.compact()`, and the automatic records and runs after folds): record,
 * collect the stable tombstones, clear the logs below their horizons, compact the storage.
 */
export class Compactor {
  /** When the own record was last appended: a peer that opens waits one interval before its first. */
  private lastRecord: number
  private lastAuto: number
  private timer: NodeJS.Timeout | null = null
  private timerAt = 0

  /**
   * @param cutsEvery - ms between automatic records (0: only `compact()` records)
   * @param autoEvery - ms between automatic compactions (0: none)
   */
  constructor (private readonly h: CompactorHost, private readonly cutsEvery: number, private readonly autoEvery: number) {
    this.lastRecord = this.lastAuto = now()
  }

  /** The last walk of the directories, and when it was made: `stats()` may be called often. */
  private measured: { at: number, bytes: DiskBytes } | null = null

  /** Bytes on disk: a walk of the directories, at most one a second (compaction measures afresh). */
  get disk (): DiskBytes {
    if (this.measured !== null && now() - this.measured.at < DISK_TTL) return this.measured.bytes
    return this.measure()
  }

  private measure (): DiskBytes {
    const bytes = { logs: this.h.dirs.logs === null ? null : diskBytes(this.h.dirs.logs), view: diskBytes(this.h.dirs.view) }
    this.measured = { at: now(), bytes }
    return bytes
  }

  /**
   * After a fold (the caller holds the engine's queue): records when due and the interval has
   * passed (else asks `schedule` again when it will have), collects what became stable, and runs
   * an automatic compaction when one is due.
   */
  async afterFold (schedule: () => void): Promise<void> {
    const s = this.h.stability
    await s.refresh()
    await this.farewell()
    if (this.cutsEvery > 0 && this.h.writable() && s.due()) {
      const wait = this.lastRecord + this.cutsEvery - now()
      if (wait <= 0) await this.record()
      else this.wake(wait, schedule)
    }
    if (this.autoEvery > 0 && now() - this.lastAuto >= this.autoEvery) {
      this.lastAuto = now()
      // an automatic run records first when due, as compact() does, whatever the record interval
      if (this.h.writable() && s.due()) await this.record()
      await this.run(false)
    } else {
      const collected = await s.collect()
      if (collected > 0) this.h.compacted({ blocksCleared: 0, tombstonesCollected: collected })
    }
  }

  /**
   * After an own write (outside the queue): a write folds nothing, so when a record or an
   * automatic run is due, a fold is asked for (now, or by a timer when the interval passes) and
   * `afterFold` does the work.
   */
  poke (schedule: () => void): void {
    const recordIn = this.cutsEvery > 0 && this.h.stability.due() ? this.lastRecord + this.cutsEvery - now() : Infinity
    const autoIn = this.autoEvery > 0 ? this.lastAuto + this.autoEvery - now() : Infinity
    this.wake(Math.min(recordIn, autoIn), schedule)
  }

  /** Asks for a fold in `wait` ms (one timer: the earliest wanted). */
  private wake (wait: number, schedule: () => void): void {
    if (wait === Infinity) return
    const at = now() + Math.max(0, wait)
    if (this.timer !== null && this.timerAt <= at) return
    if (this.timer !== null) clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(() => { this.timer = null; schedule() }, Math.max(0, wait))
    this.timer.unref()
  }

  /** Appends the own record now (tolerating a log that refuses: it stays due). */
  private async record (): Promise<void> {
    try {
      const covering = this.h.stability.reading()
      await this.h.record(this.h.stability.vector())
      this.h.stability.recordedAt(covering)
      this.lastRecord = now()
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code !== 'MESHBEE_CLOCK_AHEAD' && code !== 'MESHBEE_STORAGE' && code !== 'MESHBEE_NOT_WRITABLE') throw err
      this.h.log.debug({ err }, 'stability record not appended now')
    }
  }

  /** The removal a farewell record was appended for (or found), so it is appended once. */
  private farewellFor: Stamp | null = null

  /**
   * This peer was removed: once its clock has passed the removal's stamp, it appends one last
   * record, which tells every peer that nothing it appends later is stamped before its removal
   * (nothing later counts but what lies below its cut), so the removed member no longer bounds
   * how far the logs are cleared. A clock held back from the stamp (a remover far ahead, past
   * maxDrift) appends none: the bound stays, which only keeps blocks.
   */
  private async farewell (): Promise<void> {
    const m = this.h.members().get(this.ownId())
    const at = m?.removedAt
    if (this.h.farewell === undefined || m === undefined || !m.removed || m.reader === true || at === undefined) return
    if (this.farewellFor !== null && compareStamps(this.farewellFor, at) >= 0) return
    if (compareStamps(this.h.clock(), at) < 0) return
    const own = this.h.writers.get(this.ownId())
    const last = own === undefined ? null : await readRecord(own, own.core.length)
    this.farewellFor = at
    if (last?.at != null && compareStamps(last.at, at) >= 0) return
    try {
      await this.h.farewell(this.h.stability.vector())
    } catch (err) {
      this.farewellFor = null
      this.h.log.debug({ err }, 'last stability record not appended now')
    }
  }

  /** `db.compact()`: the caller holds the engine's queue and has folded. */
  async compact (progress?: (p: CompactProgress) => void): Promise<CompactResult> {
    const started = Date.now()
    const bytesBefore = this.measure()
    progress?.({ phase: 'record', done: 0, total: 1 })
    if (this.h.writable() && (this.h.stability.due() || !this.h.stability.records.has(this.ownId()))) await this.record()
    progress?.({ phase: 'record', done: 1, total: 1 })
    const { collected, cleared, lateBy } = await this.run(true, progress)
    return {
      blocksCleared: cleared,
      tombstonesCollected: collected,
      tombstones: this.graves(),
      heldBackBy: [...new Set([...this.h.stability.heldBackBy(), ...lateBy])].sort(),
      bytesBefore,
      bytesAfter: this.measure(),
      ms: Date.now() - started
    }
  }

  private ownId (): string {
    return this.h.stability.ownId
  }

  private graves (): number {
    return this.h.stability.graves
  }

  /**
   * Collects stable tombstones and clears the logs below their horizons; `storage`: compacts the
   * storage after. `lateBy`: the removed members that bound the horizons (none where no log is cleared).
   */
  private async run (storage: boolean, progress?: (p: CompactProgress) => void): Promise<{ collected: number, cleared: number, lateBy: string[] }> {
    const s = this.h.stability
    const collected = await s.collect((done, total) => progress?.({ phase: 'collect', done, total }))
    let cleared = 0
    let lateBy: string[] = []
    if (this.h.history() === 'live') {
      const frontier = s.frontier()
      const members = this.h.members()
      // An encrypted log's membership is read from all its clear blocks in order, by every peer
      // (lib/privacy.ts): a peer that never held its cleared blocks could not read it, so an
      // encrypted database's logs are never cleared; its tombstones still are.
      // A removed member's log is kept whole: its entries below the cut count, and a peer that
      // meets it only after every other peer cleared it could not read it (its catch-up fetches
      // live logs only). A log with a malformed block is kept for the rule that caps it.
      const logs = [...this.h.writers.values()].filter((w) => liveWriter(members.get(w.id)) && !w.encrypted && w.malformedAt === Infinity)
      // (and no lower than a removed member's entries not read here yet may cut it to)
      const late = logs.length > 0 ? await s.lateBound() : { bound: new Map<string, number>(), by: [] }
      lateBy = late.by
      // the checkpoints the horizons come from must be in LevelDB before a block goes: a view that
      // lost its newest commits (a crash in the write-behind window) folds again from the ones it has
      if (logs.length > 0) {
        try {
          await this.h.view.settle()
        } catch {
          logs.length = 0 // (LevelDB refuses writes: nothing is cleared until it takes them again)
        }
      }
      let n = 0
      for (const w of logs) {
        const horizon = Math.min(this.h.checkpoints.get(w.id) ?? 0, frontier.get(w.id) ?? 0, late.bound.get(w.id) ?? Infinity)
        cleared += await clearLog(w, horizon)
        progress?.({ phase: 'clear', done: ++n, total: logs.length })
      }
      if (cleared > 0) {
        this.h.stats.blocksCleared += cleared
        await this.h.view.write([this.h.view.putMeta('cleared-count', seqBytes(this.h.stats.blocksCleared))])
        this.h.log.debug({ blocks: cleared }, 'cleared log blocks below the stable horizon')
      }
    }
    if (storage && (collected > 0 || cleared > 0)) {
      progress?.({ phase: 'storage', done: 0, total: 2 })
      // the logs' store once, whole (a core's own compact() covers the rest of the store anyway)
      if (cleared > 0) await this.h.compactLogs().catch((err: unknown) => { this.h.log.debug({ err }, 'the log store did not compact') })
      progress?.({ phase: 'storage', done: 1, total: 2 })
      await this.h.view.compact()
      progress?.({ phase: 'storage', done: 2, total: 2 })
    }
    if (collected > 0 || cleared > 0) this.h.compacted({ blocksCleared: cleared, tombstonesCollected: collected })
    return { collected, cleared, lateBy }
  }

  close (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }
}
