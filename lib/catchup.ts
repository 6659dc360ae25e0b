/**
 * Catch-up of one remote writer log: a state machine over the whole-log download (every peer keeps
 * and serves every member's whole log) and the sparse fetch (a peer far behind fetches only the
 * blocks its fold's diff reads, folds, then downloads the rest).
 *
 *   idle ──resume──▶ downloading ──far behind──▶ fetching ──done──▶ fetched ──next fold──▶ downloading
 *     ▲                                               │   ▲                      │
 *     └──── skipped, failed (resumes downloading) ────┘   └── an append, while the checkpoint
 *                                                             is past the contiguous length
 *
 * Every fold resumes the download of a log that is not fetching. The own log stays idle: it is
 * written here, never downloaded.
 */
import type Hypercore from 'hypercore'
import type { Logger } from 'pino'
import { treeLevels, treeSizeEstimate, type TreeLevel } from './blocks.js'
import { fetchFailed } from './errors.js'
import { seqBytes } from './view.js'
import { FETCH_TIMEOUT, storedLength, type WriterLog } from './writer-log.js'

export type CatchUpPhase = 'idle' | 'downloading' | 'fetching' | 'fetched'

/** What a catch-up needs from the engine, given at construction. */
export interface CatchUpHost {
  /** A log at least this many blocks ahead of what is held is fetched sparsely. */
  readonly sparseAfter: number
  readonly log: Logger
  closing: () => boolean
  /** Asks for a fold (after a fetch, whatever its outcome). */
  schedule: () => void
  /** A sparse fetch brought `blocks` blocks (`'fetched'`), or was not worth it (`'skipped'`). */
  counted: (outcome: 'fetched' | 'skipped', blocks: number) => void
}

/**
 * Where a log keeps the length whose tree its last sparse fetch brought (its own store): after a
 * restart, or a view rebuilt from the logs, the folds read that tree again, as before, when no
 * peer is there to fetch it from (a removed member's membership past its cut among it).
 */
const FETCHED = 'meshbee/fetched'

/** The length a sparse fetch brought the tree of, kept in the log's store (0: none). */
export async function loadFetched (core: Hypercore): Promise<number> {
  return await storedLength(core, FETCHED)
}

/** Hypercore's default request window (lib/replicator.js DEFAULT_MAX_INFLIGHT). */
export const INFLIGHT = [16, 512] as const
/** Hyperbee's window, for a sparse fetch: its requests are few and latency-bound. */
const SPARSE_INFLIGHT = [256, 512] as const
/** How often a log being downloaded is checked for a stall on a block no connected peer holds (ms). */
const STALL_CHECK = 1000

/** Sets how many block requests a core keeps in flight per peer (Hypercore scales it with the round-trip time). */
export function setWindow (core: Hypercore, [min, max]: readonly [number, number]): void {
  const rep = (core as unknown as { replicator?: { setInflightRange?: (min: number, max: number) => void } }).replicator
  rep?.setInflightRange?.(min, max)
}

export class CatchUp {
  phase: CatchUpPhase = 'idle'
  private download: { destroy: () => void } | null = null
  /** After a failed or skipped sparse fetch: no other until the contiguous length reaches this. */
  private noFetchUntil = 0
  /** How many peers were connected when a fetch last failed: a stalled log retries it only for another length, or other peers. */
  private failedWith = -1
  /**
   * The download stopped at a block no connected peer holds (compaction cleared it everywhere it
   * was, lib/compaction.ts): the next `maybeFetch` fetches sparsely whatever the gap, since the
   * download will not bring it.
   */
  private stalled = false
  private watchdog: NodeJS.Timeout | null = null
  private lastContiguous = -1

  constructor (private readonly w: WriterLog, private readonly host: CatchUpHost) {}

  get fetching (): boolean {
    return this.phase === 'fetching'
  }

  /**
   * Downloads all of the log, live, from its start; a no-op for the own log, while fetching, or
   * already downloading. In order (`linear`): by default Hypercore asks for blocks at random
   * offsets across the range, so the contiguous prefix, all a fold can read, stays near empty
   * until almost the whole log has arrived, and a peer that met a log while its writer kept
   * appending folded none of it until the appends stopped (scripts/bench/load.ts).
   */
  resumeDownload (): void {
    if (this.w.local || this.w.core.writable || this.host.closing() || this.phase === 'downloading' || this.phase === 'fetching') return
    // (from where this peer's compaction stopped clearing: the blocks below were cleared on purpose)
    this.download = this.w.core.download({ start: this.w.clearedTo, end: -1, linear: true }) as { destroy: () => void }
    this.phase = 'downloading'
    if (this.watchdog === null) {
      this.watchdog = setInterval(() => { this.checkStall() }, STALL_CHECK)
      this.watchdog.unref()
    }
  }

  /** The watchdog's tick: a download that has not moved since the last one, waiting on a block no peer holds, is stalled. */
  private checkStall (): void {
    if (this.host.closing()) {
      if (this.watchdog !== null) clearInterval(this.watchdog)
      this.watchdog = null
      return
    }
    const w = this.w
    const contiguous = w.contiguous
    const still = contiguous === this.lastContiguous
    this.lastContiguous = contiguous
    // (a log that never takes the sparse path, an encrypted one, waits for its blocks)
    if (!still || this.phase !== 'downloading' || contiguous >= w.core.length || this.stalled || this.host.sparseAfter === Infinity) return
    if (!this.unheld(contiguous)) return
    this.stalled = true
    this.host.schedule()
  }

  /**
   * Whether no connected peer holds block `i`, by what each has announced: its contiguous length
   * stops at or before it (a peer announces it on connecting, and a clear lowers it) and its
   * bitfield does not have it. A download waits for such a block in vain.
   */
  private unheld (i: number): boolean {
    const peers = (this.w.core as unknown as { peers?: Array<{ remoteContiguousLength?: number, remoteBitfield?: { get: (i: number) => boolean } }> }).peers ?? []
    return peers.length > 0 && peers.every((p) => (p.remoteContiguousLength ?? Infinity) <= i && p.remoteBitfield?.get(i) === false)
  }

  private peerCount (): number {
    return ((this.w.core as unknown as { peers?: unknown[] }).peers ?? []).length
  }

  private pauseDownload (): void {
    this.download?.destroy()
    this.download = null
  }

  /**
   * A fold's read missed a block the sparse fetch should have brought (`to`: the length it read
   * to): fold the log as it downloads instead.
   */
  missed (to: number): void {
    this.noFetchUntil = Math.max(this.w.fetchedEnd, to)
    this.w.fetchedEnd = 0
    if (this.phase === 'fetched') this.phase = 'idle'
    this.resumeDownload()
  }

  /**
   * Starts a sparse fetch if the log's signed length runs `sparseAfter` blocks or more ahead of
   * both `checkpoint` and its contiguous length (or any amount, once the checkpoint itself lies
   * past the contiguous length): fetch only the blocks the fold's diff will read, with the
   * whole-log download paused so they come first, then fold. Any failure (a peer gone, a
   * malformed block) falls back to downloading the log whole. `limit`: how far the log counts
   * (Infinity for a live member, a removed member's cut, 0 for a log that does not count);
   * `removed`: a removed member's, fetched at its cut, and once folded there, at its latest length
   * for the membership entries past the cut (both only when its download stalled).
   */
  maybeFetch (checkpoint: number, limit: number, removed = false): void {
    const w = this.w
    // (a removed member's log counts to its cut, 0 or more, and its membership entries past it)
    if (this.fetching || this.host.closing() || w.local || w.core.writable || (limit === 0 && !removed) || w.malformedAt !== Infinity) return
    const from = checkpoint
    const contiguous = w.contiguous
    // a download stopped at a block no connected peer holds: seen at once here, or by the watchdog
    const stalled = this.stalled || (this.phase === 'downloading' && this.host.sparseAfter !== Infinity && contiguous < w.core.length && this.unheld(contiguous))
    // a removed member's log counts up to its cut: only a stalled download makes that worth a fetch
    if (limit !== Infinity && !stalled) return
    let to = Math.min(w.core.length, limit)
    // A removed member folded to its cut: its membership entries past the cut can still count (a
    // removal of its remover stamped before that removal, lib/membership.ts), and the blocks that
    // hold them are held by no connected peer: its latest tree is fetched, which the membership
    // read reads through (the data fold stays at the cut).
    if (removed && from === to && w.core.length > Math.max(contiguous, w.fetchedEnd)) {
      // (not again after it failed for this length)
      if (w.core.length <= this.noFetchUntil && this.peerCount() === this.failedWith) return
      to = w.core.length
    }
    // after a failure or a miss, wait for the whole-log download to pass that length
    // (a removal's cut: the tree at exactly that length, unless the one past it for membership)
    if ((limit === Infinity ? to <= w.fetchedEnd : to === w.fetchedEnd) || (contiguous < this.noFetchUntil && !stalled)) return
    // (a stalled log whose fetch failed waits for a longer log or a change of peers: the blocks
    // it asked for are held by none of these, and each try waits out its timeout)
    if (stalled && to <= this.noFetchUntil && this.peerCount() === this.failedWith) return
    // A checkpoint past the contiguous length was reached sparsely: the fold cannot move on from
    // it until the download reaches it, so any later append is fetched the same way.
    const threshold = from > contiguous || stalled ? 1 : this.host.sparseAfter
    if (to - Math.max(from, contiguous) < threshold) return
    this.stalled = false
    this.phase = 'fetching'
    this.pauseDownload()
    setWindow(w.core, SPARSE_INFLIGHT)
    this.fetchDiff(from, to, from > contiguous || stalled ? Infinity : to - contiguous).then(async (fetched) => {
      if (fetched === null) {
        // most of the gap is needed anyway: the whole-log download brings it faster (see fetchDiff)
        this.noFetchUntil = to
        this.host.counted('skipped', 0)
        return
      }
      this.host.counted('fetched', fetched)
      if (to > w.fetchedEnd || limit !== Infinity) w.fetchedEnd = to
      // (a store that refuses, or closes: the fetch is made again after a restart)
      await w.core.setUserData(FETCHED, seqBytes(w.fetchedEnd)).catch(() => {})
    }, (err: unknown) => {
      this.noFetchUntil = to
      this.failedWith = this.peerCount()
      if (!this.host.closing()) this.host.log.debug({ writer: w.id, err }, 'sparse catch-up failed; downloading the whole log')
    }).finally(() => {
      setWindow(w.core, INFLIGHT)
      // fetched: the whole-log download resumes once a fold has read these blocks
      this.phase = w.fetchedEnd >= to ? 'fetched' : 'idle'
      if (this.host.closing()) return
      if (this.phase === 'idle') this.resumeDownload()
      this.host.schedule()
    })
  }

  /**
   * Fetches the blocks a Hyperbee diff from length `from` to `to` reads: the tree at `to` without
   * its subtrees written before `from` (the tree at `from` is local, since every fold reads the
   * whole changed part of its tree), and the entries of the keys in it written since. A tree walk
   * by levels, each level's blocks requested at once. Returns the blocks fetched, or null without
   * fetching the entries when they and the tree would make up half of the `gap` blocks not held
   * or more: a log with few overwrites. Block by block requests cost more than the whole-log
   * download (which also sends shorter proofs), so that download is left to bring them. On a
   * first sight of a log (`from` 0) the tree's size is estimated from its newest block alone,
   * before any walk. A checkpoint past the contiguous length (`gap` Infinity) is always fetched:
   * the download cannot reach it soon.
   */
  private async fetchDiff (from: number, to: number, gap: number): Promise<number | null> {
    const core = this.w.core
    const indexes = new Map<number, TreeLevel[]>()
    const want = new Set<number>()
    let fetched = 0
    const load = async (seqs: number[]): Promise<void> => {
      await Promise.all(seqs.map(async (seq) => {
        if (!(await core.has(seq))) fetched++
        const block = await core.get(seq, { timeout: FETCH_TIMEOUT })
        if (block === null) throw fetchFailed(`block ${seq} is not available`)
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
        if (node === undefined) throw fetchFailed(`block ${seq} has no tree node ${offset}`)
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
}
