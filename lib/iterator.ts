/**
 * Reading the view through abstract-level: its iterator (with read-ahead) and explicit snapshots.
 */
import { AbstractIterator, AbstractSnapshot, type AbstractLevel } from 'abstract-level'
import type { InnerIterator, ViewSnapshot } from './view.js'

type Bytes = Buffer

/** An explicit snapshot: LevelDB's own, with a copy of the view's write-behind table. */
export class MeshSnapshot extends AbstractSnapshot {
  readonly view: ViewSnapshot

  /** `options.owner` is the database (or sublevel) that closes the snapshot on its own close. */
  constructor (options: { owner: unknown }, view: ViewSnapshot) {
    super(...([options] as unknown as []))
    this.view = view
  }

  async _close (): Promise<void> {
    await this.view.inner.close()
  }
}

/** The read options abstract-level passes to the private methods. */
export interface ReadOptions { snapshot?: MeshSnapshot | null }


/**
 * Iterates the view's values straight on the root LevelDB over the values prefix (one iterator
 * layer less than going through the sublevel), stripping the prefix from each key. `next()` is
 * served from entries read ahead with the inner iterator's `nextv` (16, then twice as many each
 * time up to 1,024), so a caller stepping one entry at a time pays the inner layer once a chunk,
 * not once an entry.
 */
export class MeshIterator extends AbstractIterator<AbstractLevel<Bytes, unknown, unknown>, Bytes, Bytes> {
  private readonly it: InnerIterator
  private readonly prefix: Bytes
  private ahead: Array<[Bytes, Bytes]> = []
  private pos = 0
  private chunk = 16
  private ended = false
  /** The next chunk, asked for while the current one is consumed (`next()` without a limit). */
  private pending: Promise<Array<[Bytes, Bytes]>> | null = null
  /** A seek not yet passed to the inner iterator (it may be busy with `pending`). */
  private seekTo: Bytes | null = null

  constructor (db: AbstractLevel<Bytes, unknown, unknown>, options: Record<string, unknown>, it: InnerIterator, prefix: Bytes) {
    super(db, options as never)
    this.it = it
    this.prefix = prefix
  }

  private strip (entry: [Bytes, Bytes]): [Bytes, Bytes] {
    if (entry[0] !== undefined) entry[0] = entry[0].subarray(this.prefix.byteLength)
    return entry
  }

  /** The entries read ahead and not yet returned (and forgets them). */
  private takeAhead (max: number): Array<[Bytes, Bytes]> {
    const out = this.ahead.slice(this.pos, this.pos + max)
    this.pos += out.length
    return out
  }

  /**
   * The next entries of the inner iterator: the chunk already asked for if there is one (it may
   * hold more than `size`), else up to `size`. A pending seek is applied first, once the inner
   * iterator is free (a chunk asked for before the seek is dropped).
   */
  private async read (size: number): Promise<Array<[Bytes, Bytes]>> {
    if (this.seekTo !== null) {
      if (this.pending !== null) await this.pending.catch(() => {})
      this.pending = null
      this.it.seek(this.seekTo)
      this.seekTo = null
    }
    const pending = this.pending
    this.pending = null
    return pending !== null ? await pending : await this.it.nextv(size)
  }

  async _next (): Promise<[Bytes, Bytes] | undefined> {
    if (this.pos >= this.ahead.length) {
      if (this.ended) return undefined
      // the limit is abstract-level's to count (the inner iterator has none, so a seek after a
      // read-ahead loses nothing): never read ahead past it
      const unlimited = this.limit === Infinity
      const list = await this.read(unlimited ? this.chunk : Math.max(1, Math.min(this.chunk, this.limit - this.count)))
      this.ahead = list
      this.pos = 0
      this.chunk = Math.min(this.chunk * 2, 1024)
      if (list.length === 0) {
        this.ended = true
        return undefined
      }
      if (unlimited) {
        // overlap LevelDB's read of the next chunk with the consumption of this one
        this.pending = this.it.nextv(this.chunk)
        this.pending.catch(() => {})
      }
    }
    return this.strip(this.ahead[this.pos++])
  }

  async _nextv (size: number): Promise<Array<[Bytes, Bytes]>> {
    const list = this.takeAhead(size)
    if (list.length < size && !this.ended) {
      const need = size - list.length
      const more = await this.read(need)
      if (more.length === 0) this.ended = true
      list.push(...more.slice(0, need))
      this.ahead = more.slice(need)
      this.pos = 0
    }
    for (const e of list) this.strip(e)
    return list
  }

  async _all (): Promise<Array<[Bytes, Bytes]>> {
    if (this.limit < Infinity) {
      const list: Array<[Bytes, Bytes]> = []
      while (this.count + list.length < this.limit) {
        const more = await this._nextv(Math.min(1000, this.limit - this.count - list.length))
        if (more.length === 0) break
        list.push(...more)
      }
      return list
    }
    const list = this.takeAhead(Infinity)
    if (!this.ended) {
      list.push(...await this.read(1000))
      list.push(...await this.it.all())
    }
    this.ended = true
    for (const e of list) this.strip(e)
    return list
  }

  _seek (target: Bytes): void {
    this.ahead = []
    this.pos = 0
    this.chunk = 16
    this.ended = false
    this.seekTo = Buffer.concat([this.prefix, target])
  }

  async _close (): Promise<void> {
    if (this.pending !== null) await this.pending.catch(() => {})
    await this.it.close()
  }
}
