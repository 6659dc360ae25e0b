/**
 * Reading the change feed (lib/changes.ts): `db.watch` (every change of a key range, with the
 * value before and after, as commits land) and `db.changes` (the keys changed after a seq, each
 * once with its value now; live on request). Both are async iterables over one `ChangeStream`:
 * an optional first phase read at the read point the subscription started from (the range's
 * entries, or the `changes` table after `since`), then the commits that land after it, in order,
 * each read at the read points just before and after it. Nothing is missed or read twice: the
 * subscription starts between two commits (`ChangeFeed.subscribe`).
 */
import { closed, feedReset, feedCompacted, watchOverflow } from './errors.js'
import type { ChangeFeed, Landed, Origin } from './changes.js'
import { readRow } from './render.js'
import { seqBytes, type ViewSnapshot, type ViewStore } from './view.js'

type Bytes = Buffer

/** A key range of encoded keys, as abstract-level's options name its bounds. */
export interface ByteRange { gt?: Bytes, gte?: Bytes, lt?: Bytes, lte?: Bytes }

/** Whether `key` is in `r` (as in LevelDB: gte wins over gt, lte over lt). */
export function inRange (key: Bytes, r: ByteRange): boolean {
  if (r.gte !== undefined ? Buffer.compare(key, r.gte) < 0 : r.gt !== undefined && Buffer.compare(key, r.gt) <= 0) return false
  if (r.lte !== undefined ? Buffer.compare(key, r.lte) > 0 : r.lt !== undefined && Buffer.compare(key, r.lt) >= 0) return false
  return true
}

/** One change as the stream yields it, still encoded; MeshDB decodes it. */
export interface RawChange {
  type: 'put' | 'del'
  key: Bytes
  value: Bytes | undefined
  previous: Bytes | undefined
  origin: Origin
  seq: number
}

/** What a stream needs: the feed, the view, and whether the database is closing. */
export interface StreamHost {
  readonly feed: ChangeFeed
  readonly view: ViewStore
}

export interface StreamOptions {
  range: ByteRange
  /** The first phase: the range's entries now ('view'), the keys changed after a seq, or none. */
  first: { kind: 'view' } | { kind: 'since', since: number } | null
  /** Whether commits that land after the start are read (false: the first phase only). */
  live: boolean
  /** Most changes waiting to be read before the stream fails with MESHBEE_WATCH_OVERFLOW. */
  maxBuffer: number
}

/** The value of `key` at `snap`: its row, assembled (undefined when it reads as absent). */
async function valueAt (view: ViewStore, key: Bytes, snap: ViewSnapshot): Promise<Bytes | undefined> {
  const row = view.getRow(key, snap)
  return row === undefined ? undefined : await readRow(view, key, row, snap)
}

/**
 * An async iterator of changes. Subscribes at construction (once `host` resolves: the database
 * open), so a change committed after the call is read even before the first `next()`.
 */
export class ChangeStream implements AsyncIterableIterator<RawChange> {
  private host: StreamHost | null = null
  private readonly ready: Promise<void>
  private start: { snap: ViewSnapshot, seq: number } | null = null
  private unsubscribe: (() => void) | null = null
  private first: AsyncGenerator<RawChange> | null = null
  private readonly queue: Array<{ landed: Landed, keys: Bytes[] }> = []
  private readonly out: RawChange[] = []
  private waiting = 0
  private wake: (() => void) | null = null
  private error: Error | null = null
  private overflowed = false
  private done = false
  /** The seq of the last change read, for an overflow's message (where to resume). */
  private lastSeq = 0

  constructor (host: Promise<StreamHost>, private readonly opts: StreamOptions) {
    this.ready = host.then(async (h) => {
      this.host = h
      const sub = await h.feed.subscribe((landed) => { this.onLanded(landed) }, (epoch) => { this.fail(feedReset(epoch)) })
      if (opts.first?.kind === 'since' && opts.first.since > 0 && opts.first.since < h.feed.epoch - 1 && opts.first.since <= sub.seq) {
        // the reader stopped before the view was folded anew: the feed cannot list what it missed
        sub.unsubscribe()
        void sub.snap.inner.close().catch(() => {})
        throw feedReset(h.feed.epoch)
      }
      if (opts.first?.kind === 'since' && opts.first.since > 0 && opts.first.since < h.feed.collected && opts.first.since <= sub.seq) {
        // a deletion listed after the reader's seq went with its stable tombstone (lib/stability.ts)
        sub.unsubscribe()
        void sub.snap.inner.close().catch(() => {})
        throw feedCompacted(h.feed.collected)
      }
      this.unsubscribe = sub.unsubscribe
      this.start = { snap: sub.snap, seq: sub.seq }
      this.lastSeq = sub.seq
      if (opts.first?.kind === 'view') this.first = this.readRange(h.view, sub.snap, sub.seq)
      else if (opts.first?.kind === 'since') this.first = this.readSince(h.view, sub.snap, sub.seq, opts.first.since)
      if (this.done) this.teardown()
    }, (err) => { this.error = err as Error })
    this.ready.catch(() => {})
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  async next (): Promise<IteratorResult<RawChange>> {
    try {
      return await this.step()
    } catch (err) {
      // a read cut short by the database closing fails as the close does (MESHBEE_CLOSED)
      if (this.error !== null && err !== this.error) {
        const e = this.error
        this.close()
        throw e
      }
      throw err
    }
  }

  private async step (): Promise<IteratorResult<RawChange>> {
    await this.ready
    while (true) {
      if (this.done) return { done: true, value: undefined }
      if (this.first !== null) {
        const r = await this.first.next()
        if (r.done !== true) return r
        this.first = null
        this.releaseStart()
        if (!this.opts.live) {
          this.close()
          continue
        }
      }
      const change = this.out.shift()
      if (change !== undefined) {
        this.lastSeq = change.seq
        return { done: false, value: change }
      }
      const head = this.queue.shift()
      if (head !== undefined) {
        await this.read(head.landed, head.keys)
        this.waiting -= head.keys.length
        continue
      }
      if (this.overflowed) this.error = watchOverflow(this.opts.maxBuffer, this.lastSeq)
      if (this.error !== null) {
        const err = this.error
        this.close()
        throw err
      }
      if (!this.opts.live) {
        this.close()
        continue
      }
      await new Promise<void>((resolve) => { this.wake = resolve })
    }
  }

  async return (): Promise<IteratorResult<RawChange>> {
    this.close()
    return { done: true, value: undefined }
  }

  /** Ends the stream: `next()` resolves done from now on, and its hold on the view is released. */
  close (): void {
    if (this.done) return
    this.done = true
    if (this.host !== null) this.teardown()
    this.wake?.()
  }

  /** The database closed under the stream: it fails with MESHBEE_CLOSED. */
  fail (err: Error = closed()): void {
    if (this.done || this.error !== null) return
    this.error = err
    this.unsubscribe?.()
    this.wake?.()
  }

  private teardown (): void {
    this.unsubscribe?.()
    this.unsubscribe = null
    for (const q of this.queue.splice(0)) q.landed.release()
    void this.first?.return(undefined)
    this.first = null
    this.releaseStart()
  }

  private releaseStart (): void {
    const start = this.start
    this.start = null
    if (start !== null) void start.snap.inner.close().catch(() => {})
  }

  private onLanded (landed: Landed): void {
    const keys = landed.keys.filter((k) => inRange(k, this.opts.range))
    if (this.done || this.error !== null || this.overflowed || keys.length === 0) {
      landed.release()
      return
    }
    // a reader with nothing waiting takes any one commit, however large: only one behind fails
    if (this.waiting > 0 && this.waiting + keys.length > this.opts.maxBuffer) {
      landed.release()
      // the error is made when it is thrown: by then every change read before it is returned
      this.overflowed = true
      this.unsubscribe?.()
      for (const q of this.queue.splice(0)) q.landed.release()
      this.waiting = 0
      this.wake?.()
      return
    }
    this.waiting += keys.length
    this.queue.push({ landed, keys })
    this.wake?.()
  }

  /** One landed commit's changes in the range, each read before and after it. */
  private async read (landed: Landed, keys: Bytes[]): Promise<void> {
    const view = (this.host as StreamHost).view
    try {
      for (const key of keys) {
        const value = await valueAt(view, key, landed.after)
        const previous = await valueAt(view, key, landed.before)
        this.out.push({ type: value === undefined ? 'del' : 'put', key, value, previous, origin: landed.origin, seq: landed.seq })
      }
    } finally {
      landed.release()
    }
  }

  /** The range's entries at the start, as puts. */
  private async * readRange (view: ViewStore, snap: ViewSnapshot, seq: number): AsyncGenerator<RawChange> {
    const r = this.opts.range
    const it = view.valueIterator({ ...r, keys: true, values: true }, snap)
    try {
      while (true) {
        const more = await it.nextv(256)
        if (more.length === 0) return
        for (const [root, row] of more) {
          const key = root.subarray(view.valuesPrefix.byteLength)
          yield { type: 'put', key, value: await readRow(view, key, row, snap), previous: undefined, origin: 'remote', seq }
        }
      }
    } finally {
      await it.close()
    }
  }

  /**
   * The keys changed after `since` (each once, under the seq that last changed it), with their
   * value at the start. A `since` past the feed's end (the view was created anew, so its seqs
   * started over) reads every key.
   */
  private async * readSince (view: ViewStore, snap: ViewSnapshot, seq: number, since: number): AsyncGenerator<RawChange> {
    const from = since > seq ? 0 : since
    for await (const [k] of view.scan('changes', Buffer.alloc(0), snap, { gte: seqBytes(from + 1) })) {
      const at = Number(k.readBigUInt64BE(0))
      const key = k.subarray(8)
      if (!inRange(key, this.opts.range)) continue
      const value = await valueAt(view, key, snap)
      yield { type: value === undefined ? 'del' : 'put', key, value, previous: undefined, origin: 'remote', seq: at }
    }
  }
}
