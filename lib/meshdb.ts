/**
 * MeshDB: meshbee's public class. The abstract-level API comes from MeshLevel (lib/adapter.ts);
 * this class adds meshbee's own methods: documents and sets, membership, inspection and sync.
 */
import type { AbstractLevel, AbstractDatabaseOptions } from 'abstract-level'
import type { Duplex } from 'node:stream'
import { isJson, isPlainObject, isWellFormed, type Json } from '../crdt/json.js'
import { isStamp, type Stamp } from '../crdt/hlc.js'
import { MeshLevel } from './adapter.js'
import { Checkout, normalizeCuts } from './checkout.js'
import { digestToBuffer } from './digest.js'
import { ADD_READER, ADD_WRITER, MEMBER_NS, REMOVE_WRITER, memberName } from './entry.js'
import { MeshError, closed, invalidArgument, keyMismatch, notOpened, notWritable as notWritableError } from './errors.js'
import { parseInvite, pairCandidate } from './pairing.js'
import { discoveryKeyOf, peekDirectory } from './identity.js'
import { toKey } from './keys.js'
import type { WriteOp } from './entry-rule.js'
import type { InviteInfo, ChangeIterator, ChangesOptions, CorestoreLike, Cuts, DiffChange, FeedChange, IndexDeclaration, IndexEntry, KeyRange, KeyType, QueryOptions, SearchResult, KeyVersion, MembersRange, MeshDBOptions, Stats, DbStats, CompactProgress, CompactResult, SwarmOptions, VerifyResult, WatchChange, WatchOptions, WriteOperation, WriterInfo } from './types.js'
import { ChangeStream, type ByteRange, type RawChange, type StreamOptions } from './watch.js'
import { checkSpec, type IndexInfo } from './indexes.js'
import { readRow } from './render.js'
import { ROW_SET, ROW_VALUE, partKey, partPrefix, type ScanRange } from './view.js'

/** A range of members as `view.scan` takes it: the part keys of the members at the bounds. */
function membersRange (key: Buffer, opts: MembersRange): ScanRange {
  if (opts === null || typeof opts !== 'object') throw invalidArgument('smembers options must be an object')
  const out: ScanRange = { reverse: opts.reverse === true }
  for (const name of ['gt', 'gte', 'lt', 'lte'] as const) {
    const v = opts[name]
    if (v === undefined) continue
    if (!isJson(v)) throw invalidArgument(`smembers ${name} must be JSON`)
    out[name] = partKey(key, MEMBER_NS, memberName(v))
  }
  const { limit } = opts
  if (limit !== undefined && limit !== Infinity && (!Number.isSafeInteger(limit) || limit < 0)) throw invalidArgument('smembers limit must be a non-negative integer')
  if (limit !== undefined && limit !== Infinity) out.limit = limit
  return out
}

type Bytes = Buffer

/** A stream's bound on unread changes: a whole number, 1 or more (10,000 by default). */
function maxBuffer (n: unknown): number {
  if (n === undefined) return 10_000
  if (n !== Infinity && (!Number.isSafeInteger(n) || (n as number) < 1)) throw invalidArgument('maxBuffer must be a whole number, 1 or more')
  return n as number
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object'

/** A stream `replicate` can take: a duplex (or a framed stream such as a Hyperswarm connection). */
const isStream = (v: unknown): v is Duplex => isObject(v) && typeof v.pipe === 'function' && typeof v.once === 'function'

const NO_STATS: Stats = { folds: 0, diffEntries: 0, keysMerged: 0, badEntries: 0, clampedStamps: 0, sparseFetches: 0, sparseBlocks: 0, sparseSkipped: 0, rebuilds: 0, indexErrors: 0, lockedReads: 0, blocksCleared: 0, tombstonesCollected: 0 }

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
export class MeshDB<K = string, V = string> extends MeshLevel<K, V> {

  /**
   * Creates the database object; nothing touches the disk until `open()` (or the first operation,
   * which opens it). A directory that holds a database reopens it; an empty one gets a new database
   * with this peer as its creator, unless `options.key` names one to join.
   *
   * @param storage - a directory, or a Corestore shared with the app (then `options.viewPath` too)
   * @param options - meshbee's options and abstract-level's (`keyEncoding`, `valueEncoding`...)
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT`, naming the option, for a storage that is
   *   neither, a Corestore without `viewPath`, a malformed `key`, `viewPath`, `logger` (not a pino
   *   logger), `maxDrift` (not a whole number of ms, 0 or more), `wallClock` (not a function),
   *   `sparseAfter` or `swarm`; what `wallClock` returns is checked at each reading, and a reading
   *   that is not a non-negative safe integer fails the operation with the same code. `open()`
   *   then fails with `MESHBEE_KEY_MISMATCH` when the directory holds another database than
   *   `key`, `MESHBEE_STORAGE` against `createIfMissing`/`errorIfExists`, and
   *   `MESHBEE_HYPERCORE_UNSUPPORTED` when the Hypercore its Corestore loads cannot take meshbee's
   *   replicator workaround (as the `cause` of abstract-level's `LEVEL_DATABASE_NOT_OPEN`).
   */
  constructor (storage: string | CorestoreLike, options: MeshDBOptions<K, V> = {}) {
    super(storage, options)
    this.on('closing', () => { for (const s of this.streams) s.fail() })
  }

  /** The change streams open on this database (they fail with MESHBEE_CLOSED when it closes). */
  private readonly streams = new Set<ChangeStream>()

  /**
   * The database key: the creator's writer key, set once open. Share it to let others read and replicate.
   */
  get key (): Buffer { return this.currentEngine?.key as Buffer }
  /**
   * The topic peers meet on; it reveals nothing about the key.
   *
   * @throws MeshError `MESHBEE_CLOSED` before the first open.
   */
  get discoveryKey (): Buffer { return this.logs.creator.core.discoveryKey }
  /**
   * This peer's writer key: what a member passes to `addWriter` to let this peer write.
   *
   * @throws MeshError `MESHBEE_CLOSED` before the first open.
   */
  get writerKey (): Buffer { return this.logs.own.key as Buffer }

  /** The engine of an open that reached the logs (an open that failed before may not have). */
  private get logs (): MeshLevel<K, V>['engine'] {
    const engine = this.engine
    if ((engine.creator as typeof engine.creator | undefined) === undefined) throw notOpened()
    return engine
  }
  /**
   * Whether this peer is a member (and not removed), so that its writes are accepted; false while not open.
   */
  get writable (): boolean { return this.status === 'open' && this.engine.writable }
  /**
   * What this peer keeps of the logs: 'full' (every block) or 'live' (`compact()` clears what no
   * fold needs). Set by the `history` option, remembered by the directory; 'live' until open.
   */
  get history (): 'full' | 'live' { return this.currentEngine?.history ?? 'live' }

  /**
   * Counters of the fold; they only grow, across reopens too.
   */
  stats (): DbStats {
    const e = this.currentEngine
    return { ...(e?.stats ?? NO_STATS), tombstones: e?.stability.graves ?? 0, disk: e?.disk ?? { logs: null, view: 0 } }
  }

  /**
   * Sets fields of the document at `key` (LWW map: each field merges on its own, by its stamp). A
   * field set to `undefined` is deleted. A later whole-value `put` replaces the document; a key that
   * held a whole JSON object keeps its fields under the patched ones.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `fields` is not a plain object of JSON values
   * @throws MeshError `MESHBEE_NOT_WRITABLE` on a peer that is not a member; `MESHBEE_TOO_LARGE`
   *   for a key or field name over 4 KiB or a field value over 4 MiB; `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async patch (key: K, fields: Record<string, Json | undefined>): Promise<void> {
    await this.write([{ type: 'patch', key, fields }])
  }

  /**
   * Adds `member` to the set at `key` (an add-wins observed-remove set: an add concurrent with a
   * remove wins).
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `member` is not JSON
   * @throws MeshError `MESHBEE_NOT_WRITABLE`, `MESHBEE_TOO_LARGE` (as `patch`); `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async sadd (key: K, member: Json): Promise<void> {
    await this.write([{ type: 'sadd', key, member }])
  }

  /**
   * Removes `member` from the set at `key`: every add of it this peer has seen (adds it has not
   * seen yet survive).
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `member` is not JSON
   * @throws MeshError `MESHBEE_NOT_WRITABLE`, `MESHBEE_TOO_LARGE` (as `patch`); `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async srem (key: K, member: Json): Promise<void> {
    await this.write([{ type: 'srem', key, member }])
  }

  /**
   * Writes operations of every kind (`put`, `del`, `patch`, `sadd`, `srem`) as one atomic append
   * to this peer's log and one view commit: all of them or none. Operations on the same key apply
   * in order (e.g. a `del` then `sadd`s makes a fresh set), and each key's last entry is what is
   * appended (it holds the whole contribution). abstract-level's `batch` takes only `put` and
   * `del`; unlike it, `write` runs no `prewrite` hook and emits no `write` event (as `patch`,
   * `sadd` and `srem`).
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for an operation of an unknown type, a `patch`
   *   whose `fields` are not a plain object of JSON values, or a set member that is not JSON
   * @throws MeshError `MESHBEE_NOT_WRITABLE`, `MESHBEE_TOO_LARGE` (as `patch`); `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async write (ops: Array<WriteOperation<K, V>>): Promise<void> {
    if (!Array.isArray(ops)) throw invalidArgument('ops must be an array of operations')
    const encoded = ops.map((op) => this.toWriteOp(op)).filter((op) => op.type !== 'patch' || op.fields.length > 0)
    await this.opened()
    if (encoded.length > 0) await this.engine.write(encoded)
  }

  /** One operation validated and encoded for the engine. */
  private toWriteOp (op: WriteOperation<K, V>): WriteOp {
    if (op === null || typeof op !== 'object') throw invalidArgument('an operation must be an object')
    const key = this.encodeKey(op.key)
    switch (op.type) {
      case 'put': {
        if (op.value === null || op.value === undefined) throw invalidArgument('a put needs a value')
        const enc = this.valueEncoding() as unknown as { encode: (v: V) => Buffer, commonName: string }
        let value: Buffer
        try {
          value = enc.encode(op.value)
        } catch (err) {
          throw invalidArgument(`a value cannot be encoded with valueEncoding ${enc.commonName}: ${(err as Error).message}`)
        }
        return { type: 'put', key, value }
      }
      case 'del': return { type: 'del', key }
      case 'patch': {
        if (!isPlainObject(op.fields)) throw invalidArgument('fields must be a plain object')
        const fields: Array<[string, Json | undefined]> = []
        for (const [name, value] of Object.entries(op.fields)) {
          if (!isWellFormed(name)) throw invalidArgument('a field name is not well-formed Unicode')
          if (value !== undefined && !isJson(value)) throw invalidArgument(`field ${name} is not JSON`)
          fields.push([name, value])
        }
        return { type: 'patch', key, fields }
      }
      case 'sadd':
      case 'srem':
        if (!isJson(op.member)) throw invalidArgument('member must be JSON')
        return { type: op.type, key, member: op.member }
      default:
        throw invalidArgument(`unknown operation type ${String((op as { type?: unknown }).type)}`)
    }
  }

  /**
   * The members of the set at `key` in order (`[]` when the key holds no set), each read from its
   * own row: a range of a large set costs the range, not the set. Members are ordered by the UTF-8
   * bytes of their canonical JSON (object keys sorted), as `get` lists them.
   *
   * @param opts - `gt`/`gte`/`lt`/`lte` bound the members (JSON values, compared in that order);
   *   `limit` caps how many come back; `reverse` reads from the end
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a bound that is not JSON or a bad limit
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async smembers (key: K, opts: MembersRange = {}): Promise<Json[]> {
    const k = this.encodeKey(key)
    const range = membersRange(k, opts)
    await this.readable()
    const view = this.engine.view
    if (view.getRow(k)?.[0] !== ROW_SET) return []
    const at = partPrefix(k, MEMBER_NS).byteLength
    const out: Json[] = []
    for await (const [part] of view.scan('items', partPrefix(k, MEMBER_NS), undefined, range)) out.push(JSON.parse(part.subarray(at).toString('utf8')) as Json)
    return out
  }

  /**
   * Whether `member` is in the set at `key` (false when the key holds no set). Reads one row.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `member` is not JSON
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async sismember (key: K, member: Json): Promise<boolean> {
    const k = this.encodeKey(key)
    if (!isJson(member)) throw invalidArgument('member must be JSON')
    await this.readable()
    const view = this.engine.view
    return view.getRow(k)?.[0] === ROW_SET && view.getItemSync(partKey(k, MEMBER_NS, memberName(member))) !== undefined
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
    await this.readable()
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
   * Admits a reader to an encrypted database, by its writer key: it receives every key epoch (so
   * it reads everything), and none of its entries ever count. `removeWriter` removes it again.
   *
   * @throws MeshError `MESHBEE_INVALID_ARGUMENT` on a database that is not encrypted; otherwise as `addWriter`
   */
  async addReader (key: Uint8Array | string): Promise<void> {
    const k = toKey(key, 'reader key')
    await this.opened()
    if (this.engine.privacy.mode !== 'encrypted') throw invalidArgument('readers are for encrypted databases: every peer with the key reads a plain one')
    await this.engine.changeMembership(ADD_READER, k)
  }

  /**
   * The key this peer was given or made for an encrypted database (null for a plain one, and on a
   * blind seeder): hand it to a device yourself (`encryptionKey` option) if you do not pair with
   * invites. It reads what was sealed under it; later epochs reach members by grants in the logs.
   */
  get encryptionKey (): Buffer | null {
    return this.currentEngine?.privacy.baseKey ?? null
  }

  /** Whether the database is encrypted ('encrypted'), plain ('plain'), seeded blind here ('blind'), or not known yet (null: opened by key, nothing received). */
  get privacy (): 'plain' | 'encrypted' | 'blind' | null {
    return this.currentEngine?.privacy.mode ?? null
  }

  /**
   * Removes a member. The length of its log this peer has folded becomes its cut: its entries past
   * the cut never count anywhere, and the keys they touched fall back to the other writers' entries.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a malformed key
   * @throws MeshError `MESHBEE_INVALID_KEY` for a key that is not a member; `MESHBEE_NOT_WRITABLE`,
   *   `MESHBEE_CLOCK_BEHIND` (as `addWriter`); `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async removeWriter (key: Uint8Array | string): Promise<void> {
    const k = toKey(key, 'writer key')
    await this.opened()
    await this.engine.changeMembership(REMOVE_WRITER, k)
  }

  /**
   * Checks the view against the logs, layer by layer: each member's log at the length the view
   * reflects against the entries the view holds for it, those entries against what each key reads
   * as, and every row against the view's digest. It reads the whole view and every log (a full
   * check; `open()` makes only the cheap ones: a view that cannot be read, that reflects more of a
   * log than the log store holds, or whose rows do not sum to its digest is rebuilt there).
   *
   * @param opts - `repair`: rebuild the view from the logs if the check fails (emits 'rebuild');
   *   `progress(done, total)`: called as each writer's log has been checked
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `opts` is not an object or `progress` not a function
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async verify (opts: { repair?: boolean, progress?: (done: number, total: number) => void } = {}): Promise<VerifyResult> {
    if (opts === null || typeof opts !== 'object') throw invalidArgument('verify options must be an object')
    if (opts.progress !== undefined && typeof opts.progress !== 'function') throw invalidArgument('verify progress must be a function')
    await this.opened()
    return await this.engine.verify(opts.repair === true, opts.progress)
  }

  /**
   * Reclaims space on this peer. First appends this writer's stability record (how far it has
   * folded every log); then drops the view's tombstones that every live writer's latest record
   * covers (a key deleted everywhere leaves no row behind), and, unless the database was opened
   * with `history: 'full'`, clears the log blocks below each log's stable horizon that its B-tree
   * no longer references. The logs stay verifiable and keep replicating; `diff` and `checkout`
   * of a cleared range fail with `MESHBEE_HISTORY_CLEARED` unless a peer that kept it is online.
   * A live writer that has not recorded lately (offline) holds both back, and a removed one that
   * has not folded its removal holds the blocks back: `heldBackBy` names them.
   *
   * @throws MeshError `MESHBEE_BLIND` on a blind seeder
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `opts` is not an object or `onProgress` not a function
   */
  async compact (opts: { onProgress?: (p: CompactProgress) => void } = {}): Promise<CompactResult> {
    if (opts === null || typeof opts !== 'object') throw invalidArgument('compact options must be an object')
    if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw invalidArgument('compact onProgress must be a function')
    await this.opened()
    return await this.engine.compact(opts.onProgress)
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
    await this.readable()
    return (await this.engine.versions(k)).map((v) => ({ ...v, key, value: this.decodeValue(v.value) }))
  }

  /**
   * A writer's changes between two lengths of its log, one per key (its entry at `to` against its
   * entry at `from`); or, with `since` (an HLC stamp or a time in ms), the keys whose latest entry
   * is stamped after it.
   *
   * @param writerKey - the writer (32 bytes or 64 hex characters)
   * @param opts - `from` (default 0) and `to` (default: the whole log) are log lengths
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a malformed key, lengths or `since`
   * @throws MeshError `MESHBEE_INVALID_KEY` for a writer this peer does not know;
   *   `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async * diff (writerKey: Uint8Array | string, opts: { from?: number, to?: number, since?: Stamp | number } = {}): AsyncGenerator<DiffChange<K, V>> {
    const w = toKey(writerKey, 'writer key')
    if (!isObject(opts)) throw invalidArgument('diff options must be an object')
    const { from = 0, to, since } = opts
    if (!Number.isSafeInteger(from) || from < 0 || (to !== undefined && (!Number.isSafeInteger(to) || to < 0))) {
      throw invalidArgument('from and to must be log lengths (non-negative integers)')
    }
    let st: Stamp | undefined
    if (typeof since === 'number') {
      if (!Number.isSafeInteger(since) || since < 0) throw invalidArgument('since must be a stamp { wall, counter } or a time in ms (a non-negative integer)')
      st = { wall: since, counter: 0 }
    } else if (since !== undefined) {
      if (!isStamp(since)) throw invalidArgument('since must be a stamp { wall, counter } or a time in ms')
      st = since
    }
    await this.readable()
    for await (const c of this.engine.diff(w, from, to, st)) {
      yield { ...c, key: this.decodeKey(c.key), value: this.decodeValue(c.value), previous: this.decodeValue(c.previous) }
    }
  }

  /**
   * Every change of the view within a key range, once each, in commit order, as commits land: own
   * writes, folds of other logs, keys that fall back when a writer is removed. Each change carries
   * the value before and after it, in the database's encodings. A slow reader does not hold up
   * writes or folds: past `maxBuffer` unread changes the iteration fails with
   * `MESHBEE_WATCH_OVERFLOW` (its `seq` says where `changes({ since })` resumes), never silently.
   *
   * @param range - `gt`/`gte`/`lt`/`lte` in the key type (the whole view by default)
   * @param opts - `initial`: first the range's entries as they are now, then every later change,
   *   with no gap and nothing twice; `maxBuffer` (default 10,000)
   * @returns an async iterable; `close()` or `break` ends it
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a bad range or option
   */
  watch (range: KeyRange<K> = {}, opts: WatchOptions = {}): ChangeIterator<WatchChange<K, V>> {
    if (opts === null || typeof opts !== 'object') throw invalidArgument('watch options must be an object')
    const value = this.valueDecoder(opts.valueEncoding)
    return this.stream(range, { first: opts.initial === true ? { kind: 'view' } : null, live: true, maxBuffer: maxBuffer(opts.maxBuffer) },
      (c) => ({ type: c.type, key: this.decodeKey(c.key), value: value(c.value), previous: value(c.previous), origin: c.origin, seq: c.seq }))
  }

  /**
   * The view's change feed: every key in the range changed after `since`, once each, with its
   * value now and the seq of the commit that last changed it (each commit that changes the view
   * gets the next seq, stored with it). Store the last seq read to resume after a restart without
   * a rescan. A `since` beyond the feed's end (the view was created anew: its seqs started over)
   * reads every key. With `live`, it then follows every later change.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a bad range, `since` or option
   */
  changes (opts: ChangesOptions<K> = {}): ChangeIterator<FeedChange<K, V>> {
    if (opts === null || typeof opts !== 'object') throw invalidArgument('changes options must be an object')
    const since = opts.since ?? 0
    if (!Number.isSafeInteger(since) || since < 0) throw invalidArgument('changes since must be a seq: a whole number, 0 or more')
    const value = this.valueDecoder(opts.valueEncoding)
    return this.stream(opts, { first: { kind: 'since', since }, live: opts.live === true, maxBuffer: maxBuffer(opts.maxBuffer) },
      (c) => ({ type: c.type, key: this.decodeKey(c.key), value: value(c.value), seq: c.seq }))
  }

  /** Decodes stored values with the database's value encoding, or the one named. */
  private valueDecoder (name: unknown): (b: Buffer | undefined) => V | undefined {
    if (name === undefined) return (b) => this.decodeValue(b ?? null)
    if (typeof name !== 'string') throw invalidArgument('valueEncoding must be the name of an encoding')
    let enc: { decode: (b: Buffer) => V }
    try {
      enc = this.valueEncoding(name as 'utf8') as unknown as { decode: (b: Buffer) => V }
    } catch (err) {
      throw invalidArgument(`unknown valueEncoding ${name}: ${(err as Error).message}`)
    }
    return (b) => b === undefined ? undefined : enc.decode(b)
  }

  /**
   * The entries of a secondary index in index-key order: each `{ indexKey, key, value }`, the value
   * read at the same point as the index (an index is kept in the same commit as the view, so it
   * never lags it). Index keys order null < false < true < numbers < strings.
   *
   * @param name - an index declared in the options, with `defineIndex`, or by `meshbee index add`
   * @param opts - `gt`/`gte`/`lt`/`lte` (index keys), `limit`, `reverse`
   * @throws MeshError `MESHBEE_INDEX_NOT_FOUND` for an index not declared; `MESHBEE_INDEX_STALE`
   *   for a map index a process without its function wrote under (declare it to rebuild it)
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a bound that is not an index key or a bad limit
   */
  async * query (name: string, opts: QueryOptions = {}): AsyncGenerator<IndexEntry<K, V>> {
    if (opts === null || typeof opts !== 'object') throw invalidArgument('query options must be an object')
    await this.readable()
    const view = this.engine.view
    const snap = view.snapshot()
    try {
      for await (const batch of this.engine.indexes.range(name, opts, snap)) {
        // entries that hold their value need no other read; the others' rows are read together
        const missing = batch.filter((e) => e.value === undefined)
        const rows = missing.length === 0 ? [] : await view.getRows(missing.map((e) => e.key), snap)
        let m = 0
        for (const e of batch) {
          let value = e.value
          if (value === undefined) {
            const row = rows[m++]
            if (row === undefined) continue
            // a whole value is read in place; a document or set is assembled from its items
            value = row[0] === ROW_VALUE ? row.subarray(1) : await readRow(view, e.key, row, snap)
          }
          yield { indexKey: e.indexKey, key: this.decodeKey(e.key), value: this.decodeValue(value) as V }
        }
      }
    } finally {
      await snap.inner.close().catch(() => {})
    }
  }

  /**
   * Full-text search in a text index: the keys whose text holds every term of `text` (Unicode
   * letters and digits, case and diacritics folded), the last term matched as a prefix, best first
   * by BM25 over statistics the index keeps. Read at one point, like `query`.
   *
   * @param opts - `limit`: at most this many results (default 10)
   * @throws MeshError `MESHBEE_INDEX_NOT_FOUND` / `MESHBEE_INDEX_STALE` as `query`
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for text that is not a string, a bad limit, or
   *   an index that is not a text index
   */
  async * search (name: string, text: string, opts: { limit?: number } = {}): AsyncGenerator<SearchResult<K, V>> {
    if (typeof text !== 'string') throw invalidArgument('search text must be a string')
    if (opts === null || typeof opts !== 'object') throw invalidArgument('search options must be an object')
    const limit = opts.limit ?? 10
    if (limit !== Infinity && (!Number.isSafeInteger(limit) || limit < 0)) throw invalidArgument('search limit must be a whole number, 0 or more')
    await this.readable()
    const view = this.engine.view
    const snap = view.snapshot()
    try {
      for (const r of await this.engine.indexes.search(name, text, limit, snap)) {
        const row = view.getRow(r.key, snap)
        if (row === undefined) continue
        yield { key: this.decodeKey(r.key), value: this.decodeValue(await readRow(view, r.key, row, snap)) as V, score: r.score }
      }
    } finally {
      await snap.inner.close().catch(() => {})
    }
  }

  /**
   * Declares a secondary index (see the `indexes` option), kept from now on by every commit;
   * built from the view when it is new or its version or definition changed, with
   * `'index-progress'` events ({ name, done }). Resolves true if it was built.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a bad name or declaration
   */
  async defineIndex (name: string, declaration: IndexDeclaration<K, V>): Promise<boolean> {
    checkSpec(name, declaration)
    await this.opened()
    return await this.engine.defineIndex(name, this.rawIndex(declaration))
  }

  /** Removes a secondary index and its entries; resolves true if there was one. */
  async dropIndex (name: string): Promise<boolean> {
    await this.opened()
    return await this.engine.dropIndex(name)
  }

  /** The declared indexes: name, version, kind ('field' or 'map'), field, whether this process keeps it (`live`) and whether it is stale. */
  indexes (): IndexInfo[] {
    if (this.status !== 'open') return []
    return this.engine.indexes.list()
  }

  private stream<T> (range: KeyRange<K>, opts: Omit<StreamOptions, 'range'>, decode: (c: RawChange) => T): ChangeIterator<T> {
    if (range === null || typeof range !== 'object') throw invalidArgument('a key range must be an object')
    const bytes: ByteRange = {}
    for (const name of ['gt', 'gte', 'lt', 'lte'] as const) if (range[name] !== undefined) bytes[name] = this.encodeKey(range[name])
    if (this.status === 'closing' || this.status === 'closed') throw closed()
    const host = this.readable().then(() => ({ feed: this.engine.commit.feed, view: this.engine.view }))
    const inner = new ChangeStream(host, { ...opts, range: bytes })
    this.streams.add(inner)
    const streams = this.streams
    const it: ChangeIterator<T> = {
      [Symbol.asyncIterator] () { return it },
      async next () {
        try {
          const r = await inner.next()
          if (r.done === true) {
            streams.delete(inner)
            return { done: true, value: undefined }
          }
          return { done: false, value: decode(r.value) }
        } catch (err) {
          streams.delete(inner)
          throw err
        }
      },
      async return () {
        inner.close()
        streams.delete(inner)
        return { done: true, value: undefined }
      },
      close () {
        inner.close()
        streams.delete(inner)
      }
    }
    return it
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
      await this.readable()
      return await this.engine.materialize(c)
    }, { keyEncoding: this.keyEncoding().commonName, valueEncoding: this.valueEncoding().commonName } as AbstractDatabaseOptions<K, V>) as unknown as AbstractLevel<Buffer, K, V>
  }

  /**
   * A replication stream carrying every log of this database (corestore replication), with the
   * join-request channel beside it. Pipe it to the other peer's `replicate(!isInitiator)`, or pass
   * an existing framed stream (e.g. a Hyperswarm connection).
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for an argument that is neither a boolean nor a stream
   * @throws MeshError `MESHBEE_CLOSED` before the first open, and once the database closes.
   */
  replicate (isInitiatorOrStream: boolean | Duplex): Duplex {
    if (typeof isInitiatorOrStream !== 'boolean' && !isStream(isInitiatorOrStream)) {
      throw invalidArgument('replicate takes isInitiator (a boolean) or a duplex stream')
    }
    const sync = this.syncer
    if (this.status === 'closing' || this.status === 'closed') throw closed()
    return sync.add(isInitiatorOrStream)
  }

  /**
   * Joins Hyperswarm on the discovery key (as client and server) and replicates every connection;
   * resolves once the topic is announced. `opts.swarm` (else the constructor's `swarm`): an existing
   * Hyperswarm, left running on leave, or options for a new one (e.g. `bootstrap` for a private
   * DHT). Peers connect later: watch `'peer-add'`.
   *
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` when `opts` or `opts.swarm` is not an object
   * @throws `LEVEL_DATABASE_NOT_OPEN` when the database is closed or its open failed
   */
  async join (opts: SwarmOptions = {}): Promise<void> {
    await this.joinSwarm(opts, false)
  }

  private async joinSwarm (opts: SwarmOptions, adopt: boolean): Promise<void> {
    if (!isObject(opts)) throw invalidArgument('join options must be an object')
    if (opts.swarm !== undefined && !isObject(opts.swarm)) throw invalidArgument('swarm must be a Hyperswarm or an object of Hyperswarm options')
    await this.opened()
    await this.syncer.join({ swarm: opts.swarm ?? this.swarmOption }, adopt)
    // this peer's invites are answered while it is online
    if (this.syncer.swarm !== null) this.engine.invites.attach(this.syncer.swarm)
  }

  /**
   * Leaves the swarm: a swarm meshbee created is destroyed, a given one keeps running. `close()` leaves too.
   */
  async leave (): Promise<void> {
    await this.currentEngine?.invites.detach()
    await this.currentSync?.leave()
  }

  /**
   * Makes an invite: one short string (z-base32) that lets one device (or `uses` devices) become a
   * writer, or a reader of an encrypted database, by `MeshDB.pair`. This peer answers it while it
   * is joined (`join()`): it checks the invite, adds the device and hands it the database key and
   * the encryption key over the encrypted connection. The string holds the invite's secret and the
   * database's discovery key, not the database key; keep it secret until it expires (README, "Private databases").
   *
   * @param opts.role - 'writer' (default) or 'reader'
   * @param opts.uses - how many devices it admits (default 1)
   * @param opts.expires - when it stops working, ms since the epoch (default in 7 days)
   * @throws MeshTypeError `MESHBEE_INVALID_ARGUMENT` for a bad option
   * @throws MeshError `MESHBEE_NOT_WRITABLE` on a peer that is not a writer
   */
  async createInvite (opts: { role?: 'writer' | 'reader', uses?: number, expires?: number } = {}): Promise<string> {
    if (!isObject(opts)) throw invalidArgument('invite options must be an object')
    await this.opened()
    if (!this.engine.writable) throw notWritableError()
    return await this.engine.invites.create(opts)
  }

  /** Revokes an invite of this peer's (its string or id): no device pairs with it from now on. False if this peer made no such invite. */
  async revokeInvite (invite: string): Promise<boolean> {
    if (typeof invite !== 'string') throw invalidArgument('revokeInvite takes an invite string or its id')
    await this.opened()
    return await this.engine.invites.revoke(invite)
  }

  /** The invites this peer made: id, role, expiry, uses, how many it admitted, whether revoked. */
  invites (): InviteInfo[] {
    return this.currentEngine?.invites.list() ?? []
  }

  /**
   * Pairs a directory with a database by an invite: finds a member on the swarm, proves the
   * invite, and opens the database there with what the member hands over (its key, and the
   * encryption key of an encrypted one). Resolves with the database, open and joined on the swarm,
   * once this peer sees itself admitted (a writer: `writable`), or after `timeout` ms.
   *
   * @param storage - a directory: new, or one that already holds this database
   * @param invite - the string from `createInvite`
   * @param options - the database's options, and `swarm` (a Hyperswarm, or options for one: it is
   *   the database's from then on) and `timeout` (ms to wait for a member; default 60,000; 0: no limit)
   * @throws `MESHBEE_BAD_INVITE` for a string that is no invite; `MESHBEE_INVITE_REFUSED` (with
   *   `reason` `MESHBEE_INVITE_USED` or `MESHBEE_INVITE_EXPIRED` when the member said so) when a
   *   member refused it; `MESHBEE_PAIR_TIMEOUT` when no member answered in time;
   *   `MESHBEE_KEY_MISMATCH` when the directory holds another database
   */
  static async pair<K = string, V = string> (storage: string, invite: string, options: MeshDBOptions<K, V> & { timeout?: number } = {}): Promise<MeshDB<K, V>> {
    if (typeof storage !== 'string' || storage === '') throw invalidArgument('pair takes a directory')
    const { timeout = 60_000, swarm: swarmOption, ...rest } = options
    if (!Number.isSafeInteger(timeout) || timeout < 0) throw invalidArgument('timeout must be a whole number of ms, 0 or more')
    const { discoveryKey } = parseInvite(invite)
    const { writerKey, database } = await peekDirectory(storage)
    if (database !== null && !discoveryKeyOf(database).equals(discoveryKey)) throw keyMismatch(database.toString('hex'), '(the invite\'s)')
    const shared = isObject(swarmOption) && typeof (swarmOption as { join?: unknown }).join === 'function'
    const { default: Hyperswarm } = await import('hyperswarm')
    const swarm = shared ? swarmOption : new Hyperswarm((swarmOption ?? {}) as Record<string, unknown>)
    let answer
    try {
      answer = await pairCandidate(swarm, invite, writerKey, { timeout })
    } catch (err) {
      if (!shared) await (swarm as { destroy: () => Promise<void> }).destroy()
      throw err
    }
    const db = new MeshDB<K, V>(storage, { ...rest, key: answer.key, ...(answer.encryptionKey === null ? {} : { encryptionKey: answer.encryptionKey }) })
    try {
      await db.open()
      await db.joinSwarm({ swarm: swarm as SwarmOptions['swarm'] }, !shared)
    } catch (err) {
      // a swarm made here goes with the database, or alone if the database never took it
      await db.close().catch(() => {})
      if (!shared && db.currentSync?.swarm == null) await (swarm as { destroy: () => Promise<void> }).destroy().catch(() => {})
      throw err
    }
    // the member added this device before it answered: wait to see it here
    const admitted = (): boolean => answer.role === 'writer' ? db.writable : (db.privacy !== 'encrypted' || db.writers().some((w) => w.local && w.reader))
    const deadline = timeout === 0 ? Infinity : Date.now() + timeout
    while (!admitted()) {
      if (Date.now() >= deadline || db.status !== 'open') {
        await db.close().catch(() => {})
        throw new MeshError('MESHBEE_PAIR_TIMEOUT', `A member admitted this device, but its admission did not reach it within ${timeout} ms: open the database (its key is stored) and join again`)
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 250)
        function done (): void { clearTimeout(t); db.off('update', done); db.off('writer-add', done); resolve() }
        db.once('update', done)
        db.once('writer-add', done)
      })
    }
    return db
  }

  /**
   * The number of live replication connections (swarm or in-process).
   */
  get peers (): number {
    return this.currentSync?.connections ?? 0
  }

  /**
   * Asks connected peers (and peers met later) to add this peer as a writer, until it is a
   * member: members see a `'join-request'` event with this peer's writer key, and every peer
   * relays it. Returns how many peers were asked now.
   *
   * @throws MeshError `MESHBEE_CLOSED` when the database is not open (before its first open, while it opens, once it closes).
   */
  requestJoin (): number {
    const sync = this.syncer
    if (this.status === 'closing' || this.status === 'closed') throw closed()
    if (this.status !== 'open') throw notOpened()
    return sync.requestJoin()
  }
}
