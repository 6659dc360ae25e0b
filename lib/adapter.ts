/**
 * The abstract-level adapter under MeshDB. abstract-level owns the policy (argument checks,
 * encodings, deferred open, sublevels, hooks, events); this class only adapts storage: writes go
 * to the own writer log through the engine, reads come from the view store. It also opens and
 * closes the engine and the sync layer. MeshDB adds meshbee's own methods on top.
 */
import { AbstractLevel } from 'abstract-level'
import type { AbstractDatabaseOptions } from 'abstract-level'
import type Corestore from 'corestore'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { Sync } from '../sync/swarm.js'
import { Engine, type EngineOptions, type WriteOp } from './engine.js'
import { checkedWallClock } from '../crdt/hlc.js'
import { blind, closed, invalidArgument, levelError, notOpened, storageExists, storageMissing } from './errors.js'
import { ensureHypercorePatched } from './hypercore-patch.js'
import { MeshIterator, MeshSnapshot, type ReadOptions } from './iterator.js'
import { RowIterator, readRow, readRowSync } from './render.js'
import { toKey } from './keys.js'
import type { CorestoreLike, IndexDeclaration, JoinRequest, MeshDBOptions, SwarmOptions } from './types.js'
import { checkSpec, type IndexSpec } from './indexes.js'
import { ROW_VALUE, type ValueRangeOptions } from './view.js'

type Bytes = Buffer

interface OpenOptions { createIfMissing: boolean, errorIfExists: boolean }

/** meshbee's own methods, declared to abstract-level (its manifest lists them). */
const ADDITIONAL_METHODS = ['write', 'patch', 'sadd', 'srem', 'smembers', 'sismember', 'verify', 'typeOf', 'addWriter', 'removeWriter', 'update', 'stats',
  'replicate', 'join', 'leave', 'requestJoin', 'writers', 'cuts', 'versions', 'diff', 'hash', 'checkout', 'watch', 'changes', 'query',
  'defineIndex', 'dropIndex', 'indexes', 'search']

const CORESTORE_METHODS = ['session', 'get', 'namespace', 'replicate', 'ready', 'close'] as const
const LOGGER_METHODS = ['error', 'warn', 'info', 'debug'] as const

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object'

/**
 * The constructor's arguments, checked (each bad one a MeshTypeError `MESHBEE_INVALID_ARGUMENT`
 * naming it) and split into the engine's options, the swarm option and abstract-level's options.
 */
function checkOptions<K, V> (storage: unknown, options: MeshDBOptions<K, V>): { engineOptions: EngineOptions, swarm: SwarmOptions['swarm'], indexes: Record<string, IndexDeclaration<K, V>> | undefined, rest: object } {
  if (!isObject(options)) throw invalidArgument('options must be an object')
  const { key, viewPath, logger, maxDrift, wallClock, sparseAfter, swarm, indexes, encrypted, encryptionKey, history, autoCompact, cutsEvery, testFormat, ...rest } = options as Record<string, unknown>
  if (typeof storage === 'string') {
    if (storage === '') throw invalidArgument('storage must be a directory path or a Corestore (got an empty path)')
  } else if (!isObject(storage) || !CORESTORE_METHODS.every((m) => typeof storage[m] === 'function')) {
    throw invalidArgument('storage must be a directory path or a Corestore')
  }
  if (viewPath !== undefined && (typeof viewPath !== 'string' || viewPath === '')) throw invalidArgument('viewPath must be a directory path')
  if (typeof storage !== 'string' && viewPath === undefined) {
    throw invalidArgument('A Corestore as storage needs opts.viewPath, a directory for the view')
  }
  if (logger !== undefined && (!isObject(logger) || !LOGGER_METHODS.every((m) => typeof logger[m] === 'function'))) {
    throw invalidArgument(`logger must be a pino logger (an object with ${LOGGER_METHODS.join(', ')} methods)`)
  }
  if (maxDrift !== undefined && !(Number.isSafeInteger(maxDrift) && (maxDrift as number) >= 0)) {
    throw invalidArgument(`maxDrift must be a whole number of ms, 0 or more (got ${String(maxDrift)})`)
  }
  if (wallClock !== undefined && typeof wallClock !== 'function') throw invalidArgument('wallClock must be a function that returns the time in ms since the epoch')
  if (sparseAfter !== undefined && !(typeof sparseAfter === 'number' && (sparseAfter === Infinity || (Number.isSafeInteger(sparseAfter) && sparseAfter >= 0)))) {
    throw invalidArgument('sparseAfter must be a whole number of blocks (>= 0) or Infinity')
  }
  if (encrypted !== undefined && typeof encrypted !== 'boolean') throw invalidArgument('encrypted must be a boolean')
  if (history !== undefined && history !== 'full' && history !== 'live') throw invalidArgument(`history must be 'full' or 'live' (got ${String(history)})`)
  if (autoCompact !== undefined && typeof autoCompact !== 'boolean' && !(Number.isSafeInteger(autoCompact) && (autoCompact as number) >= 0)) {
    throw invalidArgument('autoCompact must be a boolean or a whole number of ms (>= 0)')
  }
  if (cutsEvery !== undefined && !(Number.isSafeInteger(cutsEvery) && (cutsEvery as number) >= 0)) {
    throw invalidArgument('cutsEvery must be a whole number of ms (>= 0; 0: only compact() records)')
  }
  if (swarm !== undefined && !isObject(swarm)) throw invalidArgument('swarm must be a Hyperswarm or an object of Hyperswarm options')
  if (indexes !== undefined) {
    if (!isObject(indexes)) throw invalidArgument('indexes must be an object of index declarations by name')
    for (const [name, spec] of Object.entries(indexes)) checkSpec(name, spec)
  }
  return {
    // every reading of the wall clock is checked where it is read (the HLC, the fold, own writes)
    engineOptions: {
      key: key === undefined ? undefined : toKey(key as Uint8Array | string, 'key'),
      viewPath: viewPath as string | undefined,
      logger: logger as EngineOptions['logger'],
      maxDrift: maxDrift as number | undefined,
      wallClock: checkedWallClock((wallClock ?? Date.now) as () => number, invalidArgument),
      sparseAfter: sparseAfter as number | undefined,
      encrypted: encrypted as boolean | undefined,
      history: history as 'full' | 'live' | undefined,
      autoCompact: autoCompact as boolean | number | undefined,
      cutsEvery: cutsEvery as number | undefined,
      testFormat: testFormat === 1 ? 1 : undefined,
      encryptionKey: encryptionKey === undefined ? undefined : toKey(encryptionKey as Uint8Array | string, 'encryptionKey')
    },
    swarm: swarm as SwarmOptions['swarm'],
    indexes: indexes as Record<string, IndexDeclaration<K, V>> | undefined,
    rest
  }
}

/** The abstract-level storage adapter MeshDB is built on; see MeshDB. */
export class MeshLevel<K, V> extends AbstractLevel<Bytes, K, V> {
  private readonly storage: string | Corestore
  private readonly engineOptions: EngineOptions
  /** @internal For `join()`: the constructor's `swarm` option. */
  protected readonly swarmOption: SwarmOptions['swarm']
  #engine: Engine | null = null
  #sync: Sync | null = null

  /** @internal See MeshDB's constructor. */
  constructor (storage: string | CorestoreLike, options: MeshDBOptions<K, V> = {}) {
    // checked before abstract-level's constructor, which schedules the deferred open
    const { engineOptions, swarm, indexes, rest } = checkOptions(storage, options)
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
      events: { update: true, 'writer-add': true, 'writer-remove': true, 'peer-add': true, 'peer-remove': true, 'join-request': true, rebuild: true, 'index-progress': true },
      additionalMethods: Object.fromEntries(ADDITIONAL_METHODS.map((name) => [name, true]))
    }
    super(manifest as ConstructorParameters<typeof AbstractLevel>[0], rest as AbstractDatabaseOptions<K, V>)
    this.storage = storage as string | Corestore
    this.swarmOption = swarm
    this.engineOptions = indexes === undefined ? engineOptions : { ...engineOptions, indexes: Object.fromEntries(Object.entries(indexes).map(([name, d]) => [name, this.rawIndex(d)])) }
  }

  /** @internal An index declaration on stored bytes: a map function sees the key and value decoded. */
  protected rawIndex (d: IndexDeclaration<K, V>): IndexSpec {
    if ('map' in d) {
      const map = d.map
      return { version: d.version, map: (key, value) => map(this.decodeKey(key), this.decodeValue(value) as V) }
    }
    if ('text' in d && typeof d.text === 'function') {
      const text = d.text
      return { version: d.version, text: (key, value) => text(this.decodeKey(key), this.decodeValue(value) as V) }
    }
    return d as IndexSpec
  }

  /**
   * @internal The engine of the current (or last) open. Each open creates one over the same
   * storage, since a closed Corestore or view cannot be reopened. Tests reach the fold through it.
   */
  get engine (): Engine {
    if (this.#engine === null) throw notOpened()
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
    engine.on('rebuild', (reason: string) => this.emit('rebuild', reason))
    engine.on('compact', (done: { blocksCleared: number, tombstonesCollected: number }) => this.emit('compact', done))
    engine.on('index-progress', (p: { name: string, done: number }) => this.emit('index-progress', p))
    const sync = new Sync({
      replicate: (conn) => engine.store.replicate(conn) as Duplex,
      get discoveryKey () { return engine.creator.core.discoveryKey },
      get writerKey () { return engine.own.key as Buffer },
      get writable () { return engine.writable },
      isMember: (id) => engine.members.has(id),
      logger: engine.log
    })
    sync.on('peer-add', (k: Buffer | null) => this.emit('peer-add', k))
    sync.on('peer-remove', (k: Buffer | null) => this.emit('peer-remove', k))
    sync.on('join-request', (r: JoinRequest) => this.emit('join-request', r))
    engine.on('writer-add', () => sync.membershipChanged())
    this.#sync = sync
    return engine
  }

  /** @internal The engine of the current open, or null before the first. */
  protected get currentEngine (): Engine | null {
    return this.#engine
  }

  /** @internal The sync layer of the current open, or null before the first. */
  protected get currentSync (): Sync | null {
    return this.#sync
  }

  /** @internal The sync layer of the current open. */
  protected get syncer (): Sync {
    if (this.#sync === null) throw notOpened()
    return this.#sync
  }

  /** @internal */
  async _open (options: OpenOptions): Promise<void> {
    const location = this.viewLocation()
    const exists = existsSync(join(location, 'CURRENT'))
    if (!exists && !options.createIfMissing) {
      throw storageMissing(location)
    }
    if (exists && options.errorIfExists) {
      throw storageExists(location)
    }
    const engine = this.createEngine()
    // The counters only grow, across reopens too.
    if (this.#engine !== null) Object.assign(engine.stats, this.#engine.stats)
    this.#engine = engine
    // The replicator workaround (lib/hypercore-patch.ts) must hold for the Hypercore this
    // Corestore really loads, an app's own copy included: checked on the own writer's core (the
    // one the engine opens next) before the view is read or anything is written.
    const own = engine.store.get({ name: 'meshbee-writer' })
    try {
      await own.ready()
      ensureHypercorePatched(own)
      await engine.open()
    } catch (err) {
      // abstract-level does not call _close() after a failed _open(): release the storage here.
      await own.close().catch(() => {})
      await engine.close().catch(() => {})
      throw err
    }
    await own.close()
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
    const row = this.row(key, options)
    if (row === undefined || row[0] === ROW_VALUE) return row?.subarray(1)
    // a document or set: its items at one read point with its row
    const view = this.engine.view
    if (options.snapshot != null) return await readRow(view, key, row, options.snapshot.view)
    const snap = view.snapshot()
    try {
      return await readRow(view, key, view.getRow(key, snap) ?? row, snap)
    } finally {
      await snap.inner.close()
    }
  }

  /** The values row of `key` (see view.ts), at the read's snapshot or now. */
  private row (key: Bytes, options: ReadOptions): Bytes | undefined {
    if (this.engine.privacy.mode === 'blind') throw blind()
    return this.engine.view.getRow(key, options.snapshot?.view ?? undefined)
  }

  /** @internal */
  async _has (key: Bytes, options: ReadOptions): Promise<boolean> {
    return this.row(key, options) !== undefined
  }

  /** @internal */
  async _hasMany (keys: Bytes[], options: ReadOptions): Promise<boolean[]> {
    return keys.map((k) => this.row(k, options) !== undefined)
  }

  /** @internal */
  _getSync (key: Bytes, options: ReadOptions): Bytes | undefined {
    const row = this.row(key, options)
    return row === undefined ? undefined : readRowSync(row)
  }

  /** @internal */
  async _getMany (keys: Bytes[], options: ReadOptions): Promise<Array<Bytes | undefined>> {
    const rows = keys.map((k) => this.row(k, options))
    if (rows.every((r) => r === undefined || r[0] === ROW_VALUE)) return rows.map((r) => r?.subarray(1))
    const view = this.engine.view
    const snap = options.snapshot?.view ?? view.snapshot()
    try {
      return await Promise.all(keys.map(async (k) => {
        const row = view.getRow(k, snap)
        return row === undefined ? undefined : await readRow(view, k, row, snap)
      }))
    } finally {
      if (options.snapshot == null) await snap.inner.close()
    }
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
    if (this.engine.privacy.mode === 'blind') throw blind()
    const view = this.engine.view
    const given = (options as ReadOptions).snapshot?.view
    if (options.values === false) {
      return new MeshIterator(this as AbstractLevel<Bytes, unknown, unknown>, options, view.valueIterator(options as ValueRangeOptions, given), view.valuesPrefix)
    }
    // documents and sets are assembled at the iterator's own read point
    const snap = given ?? view.snapshot()
    const rows = new RowIterator(view, view.valueIterator({ ...options as ValueRangeOptions, keys: true }, snap), view.valuesPrefix, snap,
      options.keys !== false, async () => { if (given === undefined) await snap.inner.close() })
    return new MeshIterator(this as AbstractLevel<Bytes, unknown, unknown>, options, rows, view.valuesPrefix)
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

  /** @internal A key as the view stores it: encoded with the key encoding, prefixed as a sublevel would. */
  protected encodeKey (key: unknown): Bytes {
    if (key === null || key === undefined) throw invalidArgument('Key cannot be null or undefined')
    const enc = this.keyEncoding() as unknown as { encode: (k: unknown) => Bytes, commonName: string }
    let encoded: Bytes
    try {
      encoded = enc.encode(key)
    } catch (err) {
      throw invalidArgument(`a key cannot be encoded with keyEncoding ${enc.commonName}: ${(err as Error).message}`)
    }
    return this.prefixKey(encoded, 'buffer', true) as Bytes
  }

  /**
   * abstract-level's deferred open for meshbee's own methods: an operation called while the
   * database opens waits for it (in abstract-level's queue, like `get` and `put`); on a database
   * that is not open it fails as theirs do.
   */
  protected async opened (): Promise<void> {
    if (this.status === 'opening') await this.deferAsync(async () => {})
    if (this.status !== 'open') throw levelError('LEVEL_DATABASE_NOT_OPEN', 'Database is not open')
  }

  /** @internal Open, and able to read: a blind seeder reads nothing (MESHBEE_BLIND). */
  protected async readable (): Promise<void> {
    await this.opened()
    if (this.engine.privacy.mode === 'blind') throw blind()
  }

  /** @internal */
  protected decodeKey (key: Buffer): K {
    return (this.keyEncoding() as unknown as { decode: (b: Buffer) => K }).decode(key)
  }

  /** @internal */
  protected decodeValue (value: Buffer | null): V | undefined {
    if (value === null) return undefined
    return (this.valueEncoding() as unknown as { decode: (b: Buffer) => V }).decode(value)
  }
}
