/**
 * MeshDB: the abstract-level face of the engine. abstract-level owns the policy (argument checks,
 * encodings, deferred open, sublevels, hooks, events); this class only adapts storage: writes go
 * to the own writer log through the engine, reads come from the view store.
 */
import { AbstractIterator, AbstractLevel, AbstractSnapshot } from 'abstract-level'
import type { AbstractDatabaseOptions } from 'abstract-level'
import type Corestore from 'corestore'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { isJson, isPlainObject, isWellFormed, type Json } from '../crdt/json.js'
import { MemoryLevel } from 'memory-level'
import { Sync } from '../sync/swarm.js'
import { Engine, type EngineOptions, type WriteOp } from './engine.js'
import type { CorestoreLike, Cuts, DiffChange, JoinRequest, KeyType, KeyVersion, MeshDBOptions, Stats, SwarmOptions, WriterInfo } from './types.js'
import { digestToBuffer } from './digest.js'
import { isStamp, type Stamp } from '../crdt/hlc.js'
import { ADD_WRITER, REMOVE_WRITER } from './entry.js'
import { MeshError, MeshTypeError, invalidArgument } from './errors.js'
import { OverlayIterator, type InnerIterator, type KeyRange, type ViewSnapshot } from './view.js'

type Bytes = Buffer

type KeyInput = unknown

function toKey (key: Uint8Array | string, name: string): Buffer {
  if (typeof key === 'string') {
    if (!/^[0-9a-f]{64}$/i.test(key)) throw invalidArgument(`${name} must be 32 bytes or 64 hex characters`)
    return Buffer.from(key, 'hex')
  }
  if (!(key instanceof Uint8Array) || key.byteLength !== 32) throw invalidArgument(`${name} must be 32 bytes or 64 hex characters`)
  return Buffer.from(key)
}

class MeshSnapshot extends AbstractSnapshot {
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

interface ReadOptions { snapshot?: MeshSnapshot | null }

interface OpenOptions { createIfMissing: boolean, errorIfExists: boolean }

/**
 * Iterates the view's values straight on the root LevelDB over the values prefix (one iterator
 * layer less than going through the sublevel), stripping the prefix from each key. `next()` is
 * served from entries read ahead with the inner iterator's `nextv` (16, then twice as many each
 * time up to 1,024), so a caller stepping one entry at a time pays the inner layer once a chunk,
 * not once an entry.
 */
class MeshIterator extends AbstractIterator<MeshDB<unknown, unknown>, Bytes, Bytes> {
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

  constructor (db: MeshDB<unknown, unknown>, options: Record<string, unknown>, it: InnerIterator, prefix: Bytes) {
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

const RANGE = ['gt', 'gte', 'lt', 'lte'] as const
const NO_STATS: Stats = { folds: 0, diffEntries: 0, keysMerged: 0, badEntries: 0, clampedStamps: 0, sparseFetches: 0, sparseBlocks: 0, sparseSkipped: 0 }


function normalizeCuts (cuts: Cuts): Map<string, number> {
  if (cuts === null || typeof cuts !== 'object') throw new MeshTypeError('MESHBEE_INVALID_CUTS', 'cuts must be a Map, an object or pairs of writer key and length')
  const pairs: Iterable<readonly [string | Uint8Array, number]> = Symbol.iterator in cuts
    ? cuts as Iterable<readonly [string | Uint8Array, number]>
    : Object.entries(cuts)
  const out = new Map<string, number>()
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new MeshTypeError('MESHBEE_INVALID_CUTS', 'each cut is a [writer key, length] pair')
    const [k, len] = pair as [unknown, unknown]
    let id: string
    try {
      id = toKey(k as string, 'writer key').toString('hex')
    } catch {
      throw new MeshTypeError('MESHBEE_INVALID_CUTS', 'a writer key in cuts is not 32 bytes or 64 hex characters')
    }
    if (!Number.isSafeInteger(len) || (len as number) < 0) throw new MeshTypeError('MESHBEE_INVALID_CUTS', `the cut of ${id} is not a length`)
    out.set(id, len as number)
  }
  return out
}

function readOnly (): Error {
  const err = new Error('A checkout is read-only') as Error & { code: string }
  err.code = 'LEVEL_READONLY'
  return err
}

/** A read-only abstract-level database holding the view at a set of cuts, built when it opens. */
class Checkout<K, V> extends MemoryLevel<K, V> {
  private readonly load: () => Promise<Array<[Buffer, Buffer]>>

  constructor (load: () => Promise<Array<[Buffer, Buffer]>>, options: AbstractDatabaseOptions<K, V>) {
    super({ ...options, storeEncoding: 'buffer' } as never)
    this.load = load
  }

  async _open (options: object): Promise<void> {
    await (MemoryLevel.prototype as unknown as { _open: (o: object) => Promise<void> })._open.call(this, options)
    const entries = await this.load()
    const batch = (MemoryLevel.prototype as unknown as { _batch: (ops: object[], o: object) => Promise<void> })._batch
    await batch.call(this, entries.map(([key, value]) => ({ type: 'put', key, value })), {})
  }

  async _put (): Promise<void> { throw readOnly() }
  async _del (): Promise<void> { throw readOnly() }
  async _batch (): Promise<void> { throw readOnly() }
  async _clear (): Promise<void> { throw readOnly() }
}

/**
 * A leaderless multi-writer database. Every peer writes to its own signed log; the fold merges all
 * members' logs into a local view that reads through the full abstract-level API (`put get getMany
 * getSync has del batch iterator keys values clear sublevel snapshot`, encodings, hooks). A write
 * resolves once its entry is in the own log and the view shows it.
 *
 * `K` and `V` are the key and value types (`string` by default, as in abstract-level); with
 * `valueEncoding: 'json'` name the value type: `new MeshDB<string, Todo>(dir, { valueEncoding: 'json' })`.
 *
 * Events: `'update'` after a fold that changed the view; `'writer-add'` (key) and `'writer-remove'`
 * (key, cut) when membership changes; `'peer-add'` and `'peer-remove'` (remote public key) for
 * replication connections; `'join-request'` ({@link JoinRequest}) when a non-member asks to be added.
 *
 * @example
 * ```ts
 * const db = new MeshDB<string, { hello: string }>('./data', { valueEncoding: 'json' })
 * await db.put('greeting', { hello: 'world' })
 * await db.get('greeting') // { hello: 'world' }
 * ```
 */
export class MeshDB<K = string, V = string> extends AbstractLevel<Bytes, K, V> {
  private readonly storage: string | Corestore
  private readonly engineOptions: EngineOptions
  private readonly swarmOption: SwarmOptions['swarm']
  #engine: Engine | null = null
  #sync: Sync | null = null

  /**
   * Creates the database object; nothing touches the disk until `open()` (or the first operation,
   * which opens it). A directory that holds a database reopens it; an empty one gets a new database
   * with this peer as its creator, unless `options.key` names one to join.
   *
   * @param storage - a directory, or a Corestore shared with the app (then `options.viewPath` too)
   * @param options - meshbee's options and abstract-level's (`keyEncoding`, `valueEncoding`...)
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a storage that is neither, a Corestore
   *   without `viewPath`, a malformed `key` or `sparseAfter`. `open()` then fails with
   *   `MESHBEE_KEY_MISMATCH` when the directory holds another database than `key`, and
   *   `MESHBEE_STORAGE` against `createIfMissing`/`errorIfExists`.
   */
  constructor (storage: string | CorestoreLike, options: MeshDBOptions<K, V> = {}) {
    const { key, viewPath, logger, maxDrift, wallClock, sparseAfter, swarm, ...rest } = options
    const manifest = {
      encodings: { buffer: true },
      implicitSnapshots: true,
      explicitSnapshots: true,
      has: true,
      getSync: true,
      seek: true,
      permanence: true,
      createIfMissing: true,
      errorIfExists: true,
      signals: { iterators: true },
      events: { update: true, 'writer-add': true, 'writer-remove': true, 'peer-add': true, 'peer-remove': true, 'join-request': true },
      additionalMethods: {
        patch: true,
        sadd: true,
        srem: true,
        smembers: true,
        typeOf: true,
        addWriter: true,
        removeWriter: true,
        update: true,
        stats: true,
        replicate: true,
        join: true,
        leave: true,
        requestJoin: true,
        writers: true,
        versions: true,
        diff: true,
        hash: true,
        checkout: true
      }
    }
    super(manifest as ConstructorParameters<typeof AbstractLevel>[0], rest as AbstractDatabaseOptions<K, V>)
    if (typeof storage !== 'string' && (storage === null || typeof storage !== 'object')) {
      throw invalidArgument('storage must be a directory path or a Corestore')
    }
    if (typeof storage !== 'string' && typeof viewPath !== 'string') {
      throw invalidArgument('A Corestore as storage needs opts.viewPath, a directory for the view')
    }
    if (sparseAfter !== undefined && !(typeof sparseAfter === 'number' && (sparseAfter === Infinity || (Number.isSafeInteger(sparseAfter) && sparseAfter >= 0)))) {
      throw invalidArgument('sparseAfter must be a whole number of blocks (>= 0) or Infinity')
    }
    this.storage = storage as string | Corestore
    this.swarmOption = swarm
    this.engineOptions = { key: key === undefined ? undefined : toKey(key, 'key'), viewPath, logger, maxDrift, wallClock, sparseAfter }
  }

  /**
   * @internal The engine of the current (or last) open. Each open creates one over the same
   * storage, since a closed Corestore or view cannot be reopened. Tests reach the fold through it.
   */
  get engine (): Engine {
    if (this.#engine === null) throw new MeshError('MESHBEE_CLOSED', 'The database has not been opened yet')
    return this.#engine
  }

  /** Where the view lives (the Engine's layout); a database exists here iff its LevelDB does. */
  private viewLocation (): string {
    return typeof this.storage === 'string' ? join(this.storage, 'view') : this.engineOptions.viewPath as string
  }

  private createEngine (): Engine {
    const engine = new Engine(this.storage, this.engineOptions)
    engine.on('update', () => this.emit('update'))
    engine.on('writer-add', (k: Buffer) => this.emit('writer-add', k))
    engine.on('writer-remove', (k: Buffer, cut: number) => this.emit('writer-remove', k, cut))
    const sync = new Sync(engine)
    sync.on('peer-add', (k: Buffer | null) => this.emit('peer-add', k))
    sync.on('peer-remove', (k: Buffer | null) => this.emit('peer-remove', k))
    sync.on('join-request', (r: JoinRequest) => this.emit('join-request', r))
    engine.on('writer-add', () => sync.membershipChanged())
    this.#sync = sync
    return engine
  }

  /**
   * The database key: the creator's writer key, set once open. Share it to let others read and replicate.
   */
  get key (): Buffer { return this.#engine?.key as Buffer }
  /**
   * The topic peers meet on; it reveals nothing about the key.
   *
   * @throws MeshError `MESHBEE_CLOSED` before the first open.
   */
  get discoveryKey (): Buffer { return this.engine.creator.core.discoveryKey }
  /**
   * This peer's writer key: what a member passes to `addWriter` to let this peer write.
   *
   * @throws MeshError `MESHBEE_CLOSED` before the first open.
   */
  get writerKey (): Buffer { return this.engine.own.key as Buffer }
  /**
   * Whether this peer is a member (and not removed), so that its writes are accepted; false while not open.
   */
  get writable (): boolean { return this.status === 'open' && this.engine.writable }
  /**
   * Counters of the fold; they only grow, across reopens too.
   */
  stats (): Stats { return { ...(this.#engine?.stats ?? NO_STATS) } }

  /** @internal */
  async _open (options: OpenOptions): Promise<void> {
    const location = this.viewLocation()
    const exists = existsSync(join(location, 'CURRENT'))
    if (!exists && !options.createIfMissing) {
      throw new MeshError('MESHBEE_STORAGE', `${location} does not exist (createIfMissing is false)`)
    }
    if (exists && options.errorIfExists) {
      throw new MeshError('MESHBEE_STORAGE', `${location} exists (errorIfExists is true)`)
    }
    const engine = this.createEngine()
    // The counters only grow, across reopens too.
    if (this.#engine !== null) Object.assign(engine.stats, this.#engine.stats)
    this.#engine = engine
    try {
      await engine.open()
    } catch (err) {
      // abstract-level does not call _close() after a failed _open(): release the storage here.
      await engine.close().catch(() => {})
      throw err
    }
  }

  /** @internal */
  async _close (): Promise<void> {
    await this.#sync?.leave()
    await this.engine.close()
  }

  // Every read is a synchronous LevelDB read (served from its cache, several times faster than a
  // round trip through the thread pool) behind the view's write-behind table. Without an explicit
  // snapshot it is its own implicit snapshot: it sees exactly the writes committed before the call.
  /** @internal */
  async _get (key: Bytes, options: ReadOptions): Promise<Bytes | undefined> {
    return this._getSync(key, options)
  }

  /** @internal */
  async _has (key: Bytes, options: ReadOptions): Promise<boolean> {
    return this._getSync(key, options) !== undefined
  }

  /** @internal */
  async _hasMany (keys: Bytes[], options: ReadOptions): Promise<boolean[]> {
    return keys.map((k) => this._getSync(k, options) !== undefined)
  }

  /** @internal */
  _getSync (key: Bytes, options: ReadOptions): Bytes | undefined {
    const view = this.engine.view
    return options.snapshot == null ? view.getValueSync(key) : view.getValueAt(key, options.snapshot.view)
  }

  /** @internal */
  async _getMany (keys: Bytes[], options: ReadOptions): Promise<Array<Bytes | undefined>> {
    return keys.map((k) => this._getSync(k, options))
  }

  /** @internal */
  async _put (key: Bytes, value: Bytes): Promise<void> {
    await this.engine.write([{ type: 'put', key, value }])
  }

  /** @internal */
  async _del (key: Bytes): Promise<void> {
    await this.engine.write([{ type: 'del', key }])
  }

  /** @internal */
  async _batch (operations: Array<{ type: 'put' | 'del', key: Bytes, value?: Bytes }>): Promise<void> {
    await this.engine.write(operations.map((op): WriteOp =>
      op.type === 'put' ? { type: 'put', key: op.key, value: op.value as Bytes } : { type: 'del', key: op.key }))
  }

  /** @internal */
  _snapshot (options: { owner: unknown }): MeshSnapshot {
    return new MeshSnapshot(options, this.engine.view.snapshot())
  }

  /** @internal */
  _iterator (options: Record<string, unknown>): MeshIterator {
    const view = this.engine.view
    return new MeshIterator(this as MeshDB<unknown, unknown>, options, this.inner(options), view.valuesPrefix)
  }

  /**
   * LevelDB's iterator over the values in an abstract-level range (encoded keys, no prefix), with
   * the view's write-behind table (or the snapshot's copy of it) laid over it.
   */
  private inner (options: Record<string, unknown>): InnerIterator {
    const view = this.engine.view
    const snap = (options as ReadOptions).snapshot?.view
    const overlay = snap !== undefined ? snap.overlay : view.overlay()
    const range: KeyRange = {}
    const prefix = view.valuesPrefix
    for (const r of RANGE) if (options[r] !== undefined) range[r] = Buffer.concat([prefix, options[r] as Bytes])
    // as in LevelDB: gte wins over gt, lte over lt
    if (range.gte !== undefined) delete range.gt
    if (range.lte !== undefined) delete range.lt
    if (range.gt === undefined && range.gte === undefined) range.gte = prefix
    if (range.lt === undefined && range.lte === undefined) range.lt = view.valuesEnd
    const reverse = options.reverse === true
    const keys = options.keys !== false
    const values = options.values !== false
    const it = view.db.iterator({
      ...range,
      reverse,
      // laying the table over LevelDB's entries needs their keys and values
      keys: keys || overlay !== null,
      values: values || overlay !== null,
      signal: options.signal,
      ...(snap !== undefined ? { snapshot: snap.inner } : {})
    } as never) as unknown as InnerIterator
    return overlay === null ? it : new OverlayIterator(it, overlay, range, { reverse, keys, values })
  }

  /** @internal */
  async _clear (options: Record<string, unknown>): Promise<void> {
    const limit = options.limit as number
    const it = this.inner({ ...options, keys: true, values: false })
    const found: Bytes[] = []
    try {
      while (limit < 0 || found.length < limit) {
        const more = await it.nextv(limit < 0 ? 1000 : Math.min(1000, limit - found.length))
        if (more.length === 0) break
        for (const [k] of more) found.push(k.subarray(this.engine.view.valuesPrefix.byteLength))
      }
    } finally {
      await it.close()
    }
    if (found.length > 0) await this.engine.write(found.map((key): WriteOp => ({ type: 'del', key })))
  }

  private encodeKey (key: KeyInput): Bytes {
    if (key === null || key === undefined) throw invalidArgument('Key cannot be null or undefined')
    const enc = this.keyEncoding() as unknown as { encode: (k: unknown) => Bytes }
    return this.prefixKey(enc.encode(key), 'buffer', true) as Bytes
  }

  private async ready (): Promise<void> {
    if (this.status === 'opening') await this.open()
    if (this.status !== 'open') {
      const err = new Error('Database is not open') as Error & { code: string }
      err.code = 'LEVEL_DATABASE_NOT_OPEN'
      throw err
    }
  }

  /**
   * Sets fields of the document at `key` (LWW map: each field merges on its own, by its stamp). A
   * field set to `undefined` is deleted. A later whole-value `put` replaces the document; a key that
   * held a whole JSON object keeps its fields under the patched ones.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `fields` is not a plain object of JSON values
   * @throws MeshError `MESHBEE_NOT_WRITABLE` on a peer that is not a member; `MESHBEE_TOO_LARGE`
   *   for a key over 4 KiB or a document over 4 MiB; `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async patch (key: K, fields: Record<string, Json | undefined>): Promise<void> {
    if (!isPlainObject(fields)) throw invalidArgument('fields must be a plain object')
    const list: Array<[string, Json | undefined]> = []
    for (const [name, value] of Object.entries(fields)) {
      if (!isWellFormed(name)) throw invalidArgument('a field name is not well-formed Unicode')
      if (value !== undefined && !isJson(value)) throw invalidArgument(`field ${name} is not JSON`)
      list.push([name, value])
    }
    const k = this.encodeKey(key)
    await this.ready()
    if (list.length > 0) await this.engine.write([{ type: 'patch', key: k, fields: list }])
  }

  /**
   * Adds `member` to the set at `key` (an add-wins observed-remove set: an add concurrent with a
   * remove wins).
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `member` is not JSON
   * @throws MeshError `MESHBEE_NOT_WRITABLE`, `MESHBEE_TOO_LARGE` (as `patch`); `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async sadd (key: K, member: Json): Promise<void> {
    if (!isJson(member)) throw invalidArgument('member must be JSON')
    const k = this.encodeKey(key)
    await this.ready()
    await this.engine.write([{ type: 'sadd', key: k, member }])
  }

  /**
   * Removes `member` from the set at `key`: every add of it this peer has seen (adds it has not
   * seen yet survive).
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `member` is not JSON
   * @throws MeshError `MESHBEE_NOT_WRITABLE`, `MESHBEE_TOO_LARGE` (as `patch`); `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async srem (key: K, member: Json): Promise<void> {
    if (!isJson(member)) throw invalidArgument('member must be JSON')
    const k = this.encodeKey(key)
    await this.ready()
    await this.engine.write([{ type: 'srem', key: k, member }])
  }

  /**
   * The sorted members of the set at `key` (`[]` when the key holds no set).
   *
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async smembers (key: K): Promise<Json[]> {
    const k = this.encodeKey(key)
    await this.ready()
    const raw = this.engine.view.getValueSync(k)
    if (raw === undefined) return []
    try {
      const v: unknown = JSON.parse(raw.toString('utf8'))
      return Array.isArray(v) ? v as Json[] : []
    } catch {
      return []
    }
  }

  /**
   * What `key` holds: `'value'` (a whole value written by `put`), `'doc'` (a document merged
   * field by field, written by `patch`), `'set'` (an add-wins set, written by `sadd`/`srem`), or
   * `undefined` when it is absent. `get` reads all three; this tells them apart (an export that
   * keeps documents and sets what they are).
   *
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async typeOf (key: K): Promise<KeyType | undefined> {
    const k = this.encodeKey(key)
    await this.ready()
    return this.engine.kindOf(k)
  }

  /**
   * Makes another peer a member, by its writer key (32 bytes or 64 hex characters): appends an
   * add entry to this peer's log, which every peer that reads it follows.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a malformed key
   * @throws MeshError `MESHBEE_NOT_WRITABLE` on a peer that is not a member; `MESHBEE_WRITER_REMOVED`
   *   for a key that was removed (never re-added); `MESHBEE_CLOCK_BEHIND` when this peer's clock
   *   runs behind the stamp of its own add by more than `maxDrift`; `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async addWriter (key: Uint8Array | string): Promise<void> {
    const k = toKey(key, 'writer key')
    await this.ready()
    await this.engine.changeMembership(ADD_WRITER, k)
  }

  /**
   * Removes a member. The length of its log this peer has folded becomes its cut: its entries past
   * the cut never count anywhere, and the keys they touched fall back to the other writers' entries.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a malformed key; `MESHBEE_INVALID_KEY` for a
   *   key that is not a member
   * @throws MeshError `MESHBEE_NOT_WRITABLE`, `MESHBEE_CLOCK_BEHIND` (as `addWriter`); `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async removeWriter (key: Uint8Array | string): Promise<void> {
    const k = toKey(key, 'writer key')
    await this.ready()
    await this.engine.changeMembership(REMOVE_WRITER, k)
  }

  /**
   * Folds everything that has arrived locally now; resolves true if the view changed.
   *
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async update (): Promise<boolean> {
    await this.ready()
    return await this.engine.update()
  }

  private decodeKey (key: Buffer): K {
    return (this.keyEncoding() as unknown as { decode: (b: Buffer) => K }).decode(key)
  }

  private decodeValue (value: Buffer | null): V | undefined {
    if (value === null) return undefined
    return (this.valueEncoding() as unknown as { decode: (b: Buffer) => V }).decode(value)
  }

  /**
   * Every writer log reached from the creator: its length, cut, folded length, membership and clock skew (`[]` while not open).
   */
  writers (): WriterInfo[] {
    if (this.status !== 'open') return []
    return this.engine.writerInfo()
  }

  /**
   * The length of each writer's log the view reflects (hex writer key to length): pass them to `checkout` later.
   */
  cuts (): Map<string, number> {
    return new Map(this.writers().map((w) => [w.key.toString('hex'), w.folded]))
  }

  /**
   * Every member's latest entry for `key`, the winner first: the conflicts behind its value (`[]` when none).
   *
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async versions (key: K): Promise<Array<KeyVersion<K, V>>> {
    const k = this.encodeKey(key)
    await this.ready()
    return (await this.engine.versions(k)).map((v) => ({ ...v, key, value: this.decodeValue(v.value) }))
  }

  /**
   * A writer's changes between two lengths of its log, one per key (its entry at `to` against its
   * entry at `from`); or, with `since` (an HLC stamp or a time in ms), the keys whose latest entry
   * is stamped after it.
   *
   * @param writerKey - the writer (32 bytes or 64 hex characters)
   * @param opts - `from` (default 0) and `to` (default: the whole log) are log lengths
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a malformed key, lengths or `since`;
   *   `MESHBEE_INVALID_KEY` for a writer this peer does not know
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async * diff (writerKey: Uint8Array | string, opts: { from?: number, to?: number, since?: Stamp | number } = {}): AsyncGenerator<DiffChange<K, V>> {
    const w = toKey(writerKey, 'writer key')
    const { from = 0, to, since } = opts
    if (!Number.isSafeInteger(from) || from < 0 || (to !== undefined && (!Number.isSafeInteger(to) || to < 0))) {
      throw invalidArgument('from and to must be log lengths (non-negative integers)')
    }
    let st: Stamp | undefined
    if (typeof since === 'number') st = { wall: since, counter: 0 }
    else if (since !== undefined) {
      if (!isStamp(since)) throw invalidArgument('since must be a stamp { wall, counter } or a time in ms')
      st = since
    }
    await this.ready()
    for await (const c of this.engine.diff(w, from, to, st)) {
      yield { ...c, key: this.decodeKey(c.key), value: this.decodeValue(c.value), previous: this.decodeValue(c.previous) }
    }
  }

  /**
   * A 32-byte digest of the whole view: equal on peers whose views are equal; kept current by every fold.
   *
   * @throws MeshError `MESHBEE_CLOSED` before the first open.
   */
  hash (): Buffer {
    return digestToBuffer(this.engine.digest)
  }

  /**
   * A read-only database holding the view as it was at the given cuts (writer lengths, as `cuts()`
   * returns them; writers missing count as empty). It opens like any abstract-level database and
   * is built in memory when it opens; its writes fail with `LEVEL_READONLY`.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_CUTS` when `cuts` are not writer keys and lengths
   */
  checkout (cuts: Cuts): AbstractLevel<Buffer, K, V> {
    const c = normalizeCuts(cuts)
    return new Checkout<K, V>(async () => {
      await this.ready()
      return await this.engine.materialize(c)
    }, { keyEncoding: this.keyEncoding().commonName, valueEncoding: this.valueEncoding().commonName } as AbstractDatabaseOptions<K, V>) as unknown as AbstractLevel<Buffer, K, V>
  }

  /**
   * A replication stream carrying every log of this database (corestore replication), with the
   * join-request channel beside it. Pipe it to the other peer's `replicate(!isInitiator)`, or pass
   * an existing framed stream (e.g. a Hyperswarm connection).
   *
   * @throws MeshError `MESHBEE_CLOSED` before the first open.
   */
  replicate (isInitiatorOrStream: boolean | Duplex): Duplex {
    return this.syncer.add(isInitiatorOrStream)
  }

  private get syncer (): Sync {
    if (this.#sync === null) throw new MeshError('MESHBEE_CLOSED', 'The database has not been opened yet')
    return this.#sync
  }

  /**
   * Joins Hyperswarm on the discovery key (as client and server) and replicates every connection;
   * resolves once the topic is announced. `opts.swarm` (else the constructor's `swarm`): an existing
   * Hyperswarm, left running on leave, or options for a new one (e.g. `bootstrap` for a private
   * DHT). Peers connect later: watch `'peer-add'`.
   *
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async join (opts: SwarmOptions = {}): Promise<void> {
    await this.ready()
    await this.syncer.join({ swarm: opts.swarm ?? this.swarmOption })
  }

  /**
   * Leaves the swarm: a swarm meshbee created is destroyed, a given one keeps running. `close()` leaves too.
   */
  async leave (): Promise<void> {
    await this.#sync?.leave()
  }

  /**
   * The number of live replication connections (swarm or in-process).
   */
  get peers (): number {
    return this.#sync?.connections ?? 0
  }

  /**
   * Asks connected peers (and peers met later) to add this peer as a writer, until it is a
   * member: members see a `'join-request'` event with this peer's writer key, and every peer
   * relays it. Returns how many peers were asked now.
   *
   * @throws MeshError `MESHBEE_CLOSED` before the first open.
   */
  requestJoin (): number {
    return this.syncer.requestJoin()
  }
}
