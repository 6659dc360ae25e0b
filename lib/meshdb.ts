/**
 * MeshDB: the abstract-level face of the engine. abstract-level owns the policy (argument checks,
 * encodings, deferred open, sublevels, hooks, events); this class only adapts storage: writes go
 * to the own writer log through the engine, reads come from the view store.
 */
import { AbstractLevel } from 'abstract-level'
import type { AbstractDatabaseOptions } from 'abstract-level'
import type Corestore from 'corestore'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { isJson, isPlainObject, isWellFormed, type Json } from '../crdt/json.js'
import { Sync } from '../sync/swarm.js'
import { Engine, type EngineOptions, type WriteOp } from './engine.js'
import type { CorestoreLike, Cuts, DiffChange, JoinRequest, KeyType, KeyVersion, MeshDBOptions, Stats, SwarmOptions, WriterInfo } from './types.js'
import { digestToBuffer } from './digest.js'
import { isStamp, type Stamp } from '../crdt/hlc.js'
import { ADD_WRITER, REMOVE_WRITER } from './entry.js'
import { MeshError, MeshTypeError, invalidArgument } from './errors.js'
import { Checkout, normalizeCuts } from './checkout.js'
import { MeshIterator, MeshSnapshot, type ReadOptions } from './iterator.js'
import { toKey } from './keys.js'
import type { ValueRangeOptions } from './view.js'

type Bytes = Buffer

type KeyInput = unknown


interface OpenOptions { createIfMissing: boolean, errorIfExists: boolean }

const NO_STATS: Stats = { folds: 0, diffEntries: 0, keysMerged: 0, badEntries: 0, clampedStamps: 0, sparseFetches: 0, sparseBlocks: 0, sparseSkipped: 0 }


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
    const sync = new Sync({
      replicate: (conn) => engine.store.replicate(conn) as Duplex,
      get discoveryKey () { return engine.creator.core.discoveryKey },
      get writerKey () { return engine.own.key as Buffer },
      get writable () { return engine.writable },
      isMember: (id) => engine.members.has(id)
    })
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
    const it = view.valueIterator(options as ValueRangeOptions, (options as ReadOptions).snapshot?.view)
    return new MeshIterator(this as AbstractLevel<Bytes, unknown, unknown>, options, it, view.valuesPrefix)
  }

  /** @internal */
  async _clear (options: Record<string, unknown>): Promise<void> {
    const limit = options.limit as number
    const view = this.engine.view
    const it = view.valueIterator({ ...options as ValueRangeOptions, keys: true, values: false }, (options as ReadOptions).snapshot?.view)
    const found: Bytes[] = []
    try {
      while (limit < 0 || found.length < limit) {
        const more = await it.nextv(limit < 0 ? 1000 : Math.min(1000, limit - found.length))
        if (more.length === 0) break
        for (const [k] of more) found.push(k.subarray(view.valuesPrefix.byteLength))
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

  /**
   * abstract-level's deferred open for meshbee's own methods: an operation called while the
   * database opens waits for it (in abstract-level's queue, like `get` and `put`); on a database
   * that is not open it fails as theirs do.
   */
  private async opened (): Promise<void> {
    if (this.status === 'opening') await this.deferAsync(async () => {})
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
    await this.opened()
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
    await this.opened()
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
    await this.opened()
    await this.engine.write([{ type: 'srem', key: k, member }])
  }

  /**
   * The sorted members of the set at `key` (`[]` when the key holds no set).
   *
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async smembers (key: K): Promise<Json[]> {
    const k = this.encodeKey(key)
    await this.opened()
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
    await this.opened()
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
    await this.opened()
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
    await this.opened()
    await this.engine.changeMembership(REMOVE_WRITER, k)
  }

  /**
   * Folds everything that has arrived locally now; resolves true if the view changed.
   *
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async update (): Promise<boolean> {
    await this.opened()
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
    await this.opened()
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
    await this.opened()
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
      await this.opened()
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
    await this.opened()
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
