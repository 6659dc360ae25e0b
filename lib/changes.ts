/**
 * The view's change feed: every view commit that changes what some key reads as gets the next
 * local sequence number, written in the commit's own batch with each changed key's place in the
 * `changes` table (one entry a key, under the seq that last changed it: CouchDB's by-seq model).
 * Live subscribers (`db.watch`, `db.changes({ live })`) are told of each commit as it lands, in
 * commit order, with read points of the view just before and just after it.
 *
 * The seq is local: two peers number their commits differently. What a key reads as is the same
 * on every peer; when and in how many steps it got there is not.
 */
import type { Staged } from './commit.js'
import { seqBytes, type ViewSnapshot, type ViewStore } from './view.js'

/** Where a commit came from: this peer's own write, or a fold of other logs (or a rebuild). */
export type Origin = 'local' | 'remote'

/**
 * One landed commit, as a subscriber sees it: its seq, the keys whose value changed, and the view
 * just before and just after it. The read points are shared: each subscriber releases its hold
 * once it has read what it needs (`release`), and the last release closes them.
 */
export interface Landed {
  readonly seq: number
  readonly keys: readonly Buffer[]
  readonly origin: Origin
  readonly before: ViewSnapshot
  readonly after: ViewSnapshot
  release: () => void
}

/**
 * Where the feed keeps its floor outside the view (the own log's store): every seq a view of
 * this directory has issued is below it, so a view created anew (its directory lost) starts there
 * and never issues a seq a reader already holds.
 */
export interface FloorStore {
  get: () => Promise<number>
  set: (floor: number) => Promise<void>
}

/** How far the floor moves ahead of the seqs each time they reach it (one store write per this many commits). */
export const FLOOR_STEP = 1 << 16

/** A live subscriber: told of every commit that lands after it subscribed. */
export type Listener = (landed: Landed) => void

/** Told when the view was emptied and is folded anew: the subscriber cannot go on (see `epoch`). */
export type ResetListener = (epoch: number) => void

export class ChangeFeed {
  /** The seq of the last commit that changed a key (0 before the first). */
  seq = 0
  /**
   * The first seq after the view was last emptied (a rebuild) or created anew (a lost view): the
   * feed cannot list what changed before it (deletions among it), so a reader that stopped before
   * it must read everything again. 0 for a view that has kept its whole history.
   */
  epoch = 0
  /**
   * The newest seq whose key was dropped with its stable tombstone (lib/stability.ts): a reader
   * that stopped before it may have missed that deletion. 0 while none was.
   */
  collected = 0
  private readonly listeners = new Map<Listener, ResetListener>()
  /** The read point after the last commit, kept while subscribers exist: the next commit's "before". */
  private last: { snap: ViewSnapshot, holds: number } | null = null
  /** Whether a commit is being written (between `begin` and `landed`). */
  private writing = false
  /** Subscriptions waiting for the commit being written to land. */
  private waiting: Array<() => void> = []

  /** Every seq issued so far is below it (see FloorStore); 0 without a store. */
  private floor = 0

  constructor (private readonly view: ViewStore, private readonly floorStore: FloorStore | null = null) {}

  /**
   * Reads the last seq: the view's (kept across rebuilds), or the floor when that is higher. A
   * view may hold fewer commits than were made (LevelDB takes commits a little after they are
   * read, so a crash loses the newest; or its directory was lost): their seqs may have been read,
   * and numbering the refolded commits again from the view's seq would reuse them. Starting at the
   * floor never does, at the price of a jump in the numbers after each open.
   */
  async open (): Promise<void> {
    this.floor = (await this.floorStore?.get()) ?? 0
    const stored = await this.view.readSeq('seq')
    this.seq = Math.max(stored ?? 0, this.floor)
    this.epoch = await this.view.readSeq('epoch') ?? 0
    this.collected = await this.view.readSeq('collected') ?? 0
    if (stored === null && this.floor > 0) {
      // a view created anew for a directory whose feed had issued seqs: a new epoch
      this.epoch = this.seq + 1
      await this.view.write([this.view.putMeta('epoch', seqBytes(this.epoch))])
    }
  }

  /**
   * The view was emptied (a rebuild from the logs): reads the new epoch and fails every
   * subscriber, which cannot tell what the refold removes.
   */
  async reset (): Promise<void> {
    this.epoch = await this.view.readSeq('epoch') ?? this.seq + 1
    const told = [...this.listeners.values()]
    this.listeners.clear()
    this.drop()
    for (const r of told) r(this.epoch)
  }

  /** Before a commit with seq `seq` is written: moves the floor past it first, when it got there. */
  async reserve (seq: number | null): Promise<void> {
    if (seq === null || this.floorStore === null || seq < this.floor) return
    const floor = seq + FLOOR_STEP
    await this.floorStore.set(floor)
    this.floor = floor
  }

  /**
   * Adds the feed's rows for a commit about to be written: the next seq for each changed key.
   * Returns the seq, or null when the commit changed no key.
   */
  stage (staged: Staged): number | null {
    if (staged.changed.length === 0) return null
    const seq = this.seq + 1
    for (const key of staged.changed) staged.ops.push(...this.view.putChange(key, this.view.getSeqSync(key), seq))
    staged.ops.push(this.view.putMeta('seq', seqBytes(seq)))
    return seq
  }

  /**
   * A commit is about to be written: returns the read point just before it when there are
   * subscribers (null when there are none). Until `landed`, new subscriptions wait, so that each
   * starts either before a commit (and is told of it) or after it (and reads it).
   */
  begin (): ViewSnapshot | null {
    this.writing = true
    if (this.listeners.size === 0) return null
    if (this.last === null) this.last = { snap: this.view.snapshot(), holds: 1 }
    return this.last.snap
  }

  /**
   * The commit `begin` announced has landed (its rows are readable, or its write failed: then
   * `seq` is null). Tells every subscriber of a commit that changed keys, then lets waiting
   * subscriptions start.
   */
  landed (seq: number | null, keys: readonly Buffer[], origin: Origin, before: ViewSnapshot | null): void {
    this.writing = false
    if (seq !== null) this.seq = seq
    if (seq !== null) this.tell(seq, keys, origin, before)
    const waiting = this.waiting
    this.waiting = []
    for (const start of waiting) start()
  }

  private tell (seq: number, keys: readonly Buffer[], origin: Origin, before: ViewSnapshot | null): void {
    if (this.listeners.size === 0 || before === null || this.last === null) {
      this.drop()
      return
    }
    const prev = this.last
    const next = { snap: this.view.snapshot(), holds: 1 }
    this.last = next
    const listeners = [...this.listeners.keys()]
    prev.holds += listeners.length
    next.holds += listeners.length
    const release = (held: { snap: ViewSnapshot, holds: number }): void => {
      if (--held.holds === 0) void held.snap.inner.close().catch(() => {})
    }
    // the feed's own hold on the previous read point ends: it is no longer the latest
    release(prev)
    for (const l of listeners) {
      let done = false
      l({ seq, keys, origin, before: prev.snap, after: next.snap, release: () => { if (!done) { done = true; release(prev); release(next) } } })
    }
  }

  /**
   * Subscribes `l` to every commit that lands from now on (once no commit is being written).
   * Resolves with the read point it starts from (what the view holds then, and its seq) and the
   * way to unsubscribe; the caller closes the read point (`snap.inner.close()`).
   */
  async subscribe (l: Listener, reset: ResetListener): Promise<{ snap: ViewSnapshot, seq: number, unsubscribe: () => void }> {
    while (this.writing) await new Promise<void>((resolve) => { this.waiting.push(resolve) })
    this.listeners.set(l, reset)
    return { snap: this.view.snapshot(), seq: this.seq, unsubscribe: () => { this.unsubscribe(l) } }
  }

  private unsubscribe (l: Listener): void {
    this.listeners.delete(l)
    if (this.listeners.size === 0) this.drop()
  }

  /** Releases the feed's hold on the latest read point. */
  private drop (): void {
    const last = this.last
    this.last = null
    if (last !== null && --last.holds === 0) void last.snap.inner.close().catch(() => {})
  }
}
