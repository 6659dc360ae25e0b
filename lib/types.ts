/**
 * The public types of meshbee's API, in one place that imports no Holepunch module: the package's
 * declarations type-check in an app without types for corestore, hypercore or hyperswarm.
 */
import type { AbstractDatabaseOptions } from 'abstract-level'
import type { Logger } from 'pino'
import type { Stamp } from '../crdt/hlc.js'
import type { Json } from '../crdt/json.js'
import type { HyperswarmLike, HyperswarmOptions } from '../sync/types.js'

export type { HostPort, HyperswarmLike, HyperswarmOptions, JoinRequest, SwarmOptions } from '../sync/types.js'

/**
 * A Corestore instance (from the `corestore` package) to keep the logs in, shared with the app:
 * the database takes its namespace of it. Pass `viewPath` with it.
 */
export interface CorestoreLike {
  /** A session of the store (meshbee keeps its own, in the store's namespace). */
  session: (opts?: any) => unknown
  /** Opens a Hypercore of the store. */
  get: (opts: any) => unknown
  /** A session of the store under a name. */
  namespace: (name: string) => unknown
  /** A replication stream of every core in the store. */
  replicate: (isInitiatorOrStream: any, opts?: any) => unknown
  /** Resolves once the store is open. */
  ready: () => Promise<void>
  /** Closes the store. */
  close: () => Promise<void>
}

/** Options of `new MeshDB(storage, options)`, beside abstract-level's own (encodings and the rest). */
export interface MeshDBOptions<K = string, V = string> extends AbstractDatabaseOptions<K, V> {
  /**
   * The database key (32 bytes, or 64 hex characters): opens that database, as a reader until a
   * member adds this peer. Without it a directory that holds no database gets a new one, with this
   * peer as its creator and first writer. A key that differs from the one stored in the directory
   * fails the open with `MESHBEE_KEY_MISMATCH`.
   */
  key?: Uint8Array | string
  /** A directory for the view: required when `storage` is a Corestore, ignored otherwise. */
  viewPath?: string
  /** A pino logger for the library's logs; silent by default. */
  logger?: Logger
  /** How far (ms) a remote stamp may pull the local clock ahead of the wall clock. Default 60,000. */
  maxDrift?: number
  /** The wall clock (ms since the epoch) the hybrid logical clock reads; `Date.now` by default (for tests). */
  wallClock?: () => number
  /**
   * Catch-up: a remote log at least this many blocks ahead of what is held is read sparsely (only
   * the blocks its diff needs, then the rest downloaded for seeding). Default 256; `Infinity`: never.
   */
  sparseAfter?: number
  /** For `join()`: an existing Hyperswarm (left running on leave), or options for a new one. */
  swarm?: HyperswarmLike | HyperswarmOptions
  /**
   * Secondary indexes to keep, by name (`db.query(name, range)` reads them). When given, exactly
   * these: an index the database declares that is not here is dropped. When absent, the indexes
   * the database declares (a field index added by another process or `meshbee index add`).
   */
  indexes?: Record<string, IndexDeclaration<K, V>>
  /**
   * Create the database encrypted: every block of every member's log is sealed under a key only
   * members and readers hold; the database key then only replicates and verifies (a peer opened
   * with it alone seeds blind). A new database only (`MESHBEE_INVALID_ARGUMENT` otherwise).
   */
  encrypted?: boolean
  /**
   * A key of an encrypted database (`db.encryptionKey` of a member), for apps that hand keys over
   * themselves; pairing with an invite does it for you. This peer then reads the database.
   */
  encryptionKey?: Uint8Array | string
  /**
   * What this peer keeps of the logs: 'live' lets `compact()` clear the blocks no fold or
   * catch-up needs any more; 'full' keeps every block (an archival seeder: `meshbee seed`).
   * Remembered in the directory: an open without it keeps what was set last ('live' at first).
   */
  history?: 'full' | 'live'
  /** Compact after folds, at most every this many ms (`true`: every 60 s). Off by default. */
  autoCompact?: boolean | number
  /**
   * How often (ms) this writer appends its stability record once its view has read new data:
   * how far it has folded every log, which lets every peer drop tombstones and clear blocks.
   * Default 30,000 (the first one an interval after open); 0: only `compact()` records.
   */
  cutsEvery?: number
}

/** An index key: a JSON scalar (indexes order them null < false < true < numbers < strings). */
export type IndexKeyValue = null | boolean | number | string

/**
 * A secondary index: by a field of JSON values (a dotted path; an array there gives one entry per
 * element, a set one per member, a missing field none), or by a pure function of the key and
 * value returning index keys. Bump `version` when the definition changes: the index is rebuilt.
 */
export type IndexDeclaration<K = string, V = string> =
  | {
    /** The declaration's version: a new one rebuilds the index. */
    version: number
    /** A dotted path into JSON values (`''`: the whole value). */
    field: string
  }
  | {
    /** The declaration's version: a new one rebuilds the index. */
    version: number
    /** A pure function of a key and its value: its index keys (one, an array, or undefined for none). */
    map: (key: K, value: V) => IndexKeyValue | IndexKeyValue[] | undefined
  }
  | {
    /** The declaration's version: a new one rebuilds the index. */
    version: number
    /**
     * Full text (`db.search`): the dotted paths of the fields to read (their strings, arrays of
     * strings too), or a pure function of a key and its value returning the text.
     */
    text: string[] | ((key: K, value: V) => string | undefined)
  }

/** One result of `db.search`. */
export interface SearchResult<K, V> {
  /** The key whose value matched. */
  key: K
  /** Its value. */
  value: V
  /** Its BM25 score (greater is better; results come best first). */
  score: number
}

/** One entry of an index, as `db.query` yields it. */
export interface IndexEntry<K, V> {
  /** The index key. */
  indexKey: IndexKeyValue
  /** The key whose value gave it. */
  key: K
  /** That key's value (read at the same point as the index). */
  value: V
}

/** Options of `db.query`: a range of index keys. */
export interface QueryOptions {
  /** Index keys after this one. */
  gt?: IndexKeyValue
  /** Index keys from this one on. */
  gte?: IndexKeyValue
  /** Index keys before this one. */
  lt?: IndexKeyValue
  /** Index keys up to this one. */
  lte?: IndexKeyValue
  /** At most this many entries. */
  limit?: number
  /** From the greatest index key down. */
  reverse?: boolean
}

/** Counters of the fold, from `db.stats()`; they only grow, across reopens too. */
export interface Stats {
  /** Folds that ran (each reads what changed in the writer logs and commits it to the view). */
  folds: number
  /** Changed (writer, key) pairs read from Hyperbee diffs. */
  diffEntries: number
  /** Keys re-merged and written to the view. */
  keysMerged: number
  /** Entries skipped because they failed to decode or validate. */
  badEntries: number
  /** Remote stamps that ran more than `maxDrift` ahead of the local clock. */
  clampedStamps: number
  /** Sparse catch-ups that fetched only the blocks of a diff. */
  sparseFetches: number
  /** Blocks those sparse catch-ups fetched. */
  sparseBlocks: number
  /** Sparse catch-ups not taken: the diff needed most of the missing blocks, so the log was downloaded whole. */
  sparseSkipped: number
  /** Times the view was emptied and rebuilt from the logs (unreadable, damaged, or ahead of the logs; see the 'rebuild' event). */
  rebuilds: number
  /** Keys an index skipped because its map threw or returned keys that are not JSON scalars. */
  indexErrors: number
  /** Reads of an encrypted log that stopped at a block sealed under an epoch this peer does not hold (yet). */
  lockedReads: number
  /** Log blocks compaction cleared on this peer (`db.compact()`), kept with the view. */
  blocksCleared: number
  /** Tombstones dropped from the view once every live writer had recorded folding past them. */
  tombstonesCollected: number
}

/** Bytes on disk. */
export interface DiskBytes {
  /** The logs' store (Corestore), without RocksDB's own info logs; null when the storage is a Corestore the app gave. */
  logs: number | null
  /** The view's LevelDB. */
  view: number
}

/** What `db.stats()` returns: the counters, and what the view and the disk hold now. */
export interface DbStats extends Stats {
  /** Keys the view holds as tombstones (absent, with slots or parts), waiting for stability. */
  tombstones: number
  /** Bytes on disk (a walk of the directories, reused for a second). */
  disk: DiskBytes
}

/** Where `db.compact()` is, for a progress bar. */
export interface CompactProgress {
  /** 'record' (this writer's stability record), 'collect' (tombstones), 'clear' (log blocks, a log at a time), 'storage' (the stores compacting). */
  phase: 'record' | 'collect' | 'clear' | 'storage'
  /** Steps of the phase done. */
  done: number
  /** Steps of the phase in all. */
  total: number
}

/** What `db.compact()` did. */
export interface CompactResult {
  /** Log blocks cleared by this call. */
  blocksCleared: number
  /**
   * Tombstones dropped by this call. Folds drop what becomes stable as records arrive, so this
   * counts only what became stable with this call (`stats().tombstonesCollected` counts them all).
   */
  tombstonesCollected: number
  /** Tombstones the view still holds: live writers have not all recorded folding past them. */
  tombstones: number
  /**
   * The writers (hex) that hold compaction back: live ones whose records do not cover what this
   * peer folded (they must come online and fold, or be removed), and removed ones that have not
   * recorded folding their removal (their last record bounds how far the logs are cleared).
   */
  heldBackBy: string[]
  /** Bytes on disk before the call. */
  bytesBefore: DiskBytes
  /** Bytes on disk after it. */
  bytesAfter: DiskBytes
  /** How long it took (ms). */
  ms: number
}

/** What `db.verify()` found. */
export interface VerifyResult {
  /** Whether the view agreed with the logs. */
  ok: boolean
  /** Whether it did not, and was rebuilt from the logs (`repair: true`). */
  repaired: boolean
  /** Keys checked. */
  keys: number
  /** Log entries read. */
  entries: number
  /** The first problems found (at most 20), for people. */
  problems: string[]
}

/** One writer log as `db.writers()` describes it. */
export interface WriterInfo {
  /** The writer key (the key of its log). */
  key: Buffer
  /** The length of its log known locally. */
  length: number
  /** Its effective length: its length, or less if it was removed (0 for a log that is not a member). */
  cut: number
  /** The length of its log the view reflects. */
  folded: number
  /**
   * How much of its log this peer holds from the start (its contiguous blocks): what has arrived.
   * After a sparse catch-up it can be below `folded` until the rest has downloaded.
   */
  held: number
  /** Whether it is a member (removed members included: see `removed`). */
  member: boolean
  /** Whether it was removed: its entries past `cut` never count. */
  removed: boolean
  /** Whether it is a reader of an encrypted database (a member that receives the keys; its cut is 0: it never writes). */
  reader: boolean
  /**
   * Largest lead (ms) of its wall clock over the local one when its entries were folded (each
   * entry carries its writer's clock reading; entries of earlier releases only their stamp); 0 if
   * never ahead.
   */
  maxSkew: number
  /** Whether this is this peer's own log. */
  local: boolean
}

/** One writer's latest entry for a key, as `db.versions(key)` lists them (the winner first). */
export interface KeyVersion<K, V> {
  /** The key, as given to `versions`. */
  key: K
  /** The writer whose entry this is. */
  writer: Buffer
  /** The entry's hybrid logical clock stamp (for `'state'`, its newest entry's): with the writer key, it orders the versions. */
  stamp: Stamp
  /**
   * `'put'` and `'del'` are whole-value writes; `'state'` is everything that writer said of the
   * key's document fields or set members (with its whole-value write, if any), taken together.
   */
  type: 'put' | 'del' | 'state'
  /** What this writer alone says the key holds (decoded with the value encoding), or undefined. */
  value: V | undefined
}

/**
 * One entry's change in a writer's log, as `db.diff(writer, range)` yields them: a key's whole
 * value, or one of its document fields or set members (each is an entry of its own).
 */
export interface DiffChange<K, V> {
  /** The key that changed. */
  key: K
  /** For a change of one document field (a `'field'` entry): the field's name. */
  field?: string
  /** For a change of one set member (a `'member'` entry): the member. */
  member?: Json
  /**
   * The writer's entry at `to`: `'put'`/`'del'` a whole value, `'field'` one document field,
   * `'member'` the writer's say on one set member, `'state'` a whole contribution (logs written by
   * format 1); `'gone'`: it has no such entry at `to`.
   */
  type: 'put' | 'del' | 'state' | 'field' | 'member' | 'gone'
  /**
   * What the writer's entry at `to` says, or undefined: a whole value; a field's value as JSON
   * (undefined: deleted); the member as JSON while the writer's own add of it is live (undefined:
   * it removed the member).
   */
  value: V | undefined
  /** What its entry at `from` said, or undefined. */
  previous: V | undefined
  /** The stamp of the entry at `to`, or null when `type` is `'gone'`. */
  stamp: Stamp | null
  /** The index of the entry at `to` in the writer's log, or null when `type` is `'gone'`. */
  seq: number | null
}

/** Which members `db.smembers(key, range)` reads: bounds on the members (JSON values), a cap, an order. */
export interface MembersRange {
  /** Members after this one (by the UTF-8 bytes of the canonical JSON). */
  gt?: Json
  /** Members from this one on. */
  gte?: Json
  /** Members before this one. */
  lt?: Json
  /** Members up to this one. */
  lte?: Json
  /** At most this many members. */
  limit?: number
  /** From the last member backwards. */
  reverse?: boolean
}

/** Writer lengths: a cut per writer key (hex string or bytes); unlisted writers count as empty. */
export type Cuts = Map<string | Uint8Array, number> | Record<string, number> | Iterable<readonly [string | Uint8Array, number]>

/** A whole-value write in `db.write(ops)`. */
export interface PutOperation<K, V> {
  /** The kind of operation. */
  type: 'put'
  /** The key. */
  key: K
  /** The value, encoded with the value encoding. */
  value: V
}

/** A whole-value delete in `db.write(ops)`. */
export interface DelOperation<K> {
  /** The kind of operation. */
  type: 'del'
  /** The key. */
  key: K
}

/** Fields of a document set in `db.write(ops)`, as `patch` sets them. */
export interface PatchOperation<K> {
  /** The kind of operation. */
  type: 'patch'
  /** The document's key. */
  key: K
  /** The fields to set; a field set to `undefined` is deleted. */
  fields: Record<string, Json | undefined>
}

/** A member added to (`sadd`) or removed from (`srem`) a set in `db.write(ops)`. */
export interface SetOperation<K> {
  /** The kind of operation: add or remove. */
  type: 'sadd' | 'srem'
  /** The set's key. */
  key: K
  /** The member. */
  member: Json
}

/** One operation of `db.write(ops)`. */
export type WriteOperation<K, V> = PutOperation<K, V> | DelOperation<K> | PatchOperation<K> | SetOperation<K>

/** What a key holds (`db.typeOf(key)`): a whole value, a document, or a set. */
export type KeyType = 'value' | 'doc' | 'set'

/** A range of keys: abstract-level's bounds, in the database's key type. */
export interface KeyRange<K> {
  /** Keys after this one. */
  gt?: K
  /** Keys from this one on. */
  gte?: K
  /** Keys before this one. */
  lt?: K
  /** Keys up to this one. */
  lte?: K
}

/** A change of the view, as `db.watch` yields it. */
export interface WatchChange<K, V> {
  /** 'put': the key reads as `value` now; 'del': it reads as absent. */
  type: 'put' | 'del'
  /** The key, in the database's key encoding. */
  key: K
  /** What the key reads as after the change (undefined for 'del'). */
  value: V | undefined
  /** What it read as before (undefined if absent, and for the entries `initial` yields). */
  previous: V | undefined
  /** 'local': this peer's own write; 'remote': a fold of other logs (and the entries `initial` yields). */
  origin: 'local' | 'remote'
  /** The view commit's sequence number (local to this peer; `changes({ since })` resumes after it). */
  seq: number
}

/** Options of `db.watch`. */
export interface WatchOptions {
  /** First yield the range's entries as they are now (as puts), then every later change. */
  initial?: boolean
  /** Most changes that may wait to be read before the stream fails with `MESHBEE_WATCH_OVERFLOW` (default 10,000). */
  maxBuffer?: number
  /** The encoding values are decoded with (the database's by default), e.g. 'utf8' or 'buffer'. */
  valueEncoding?: string
}

/** Options of `db.changes`: a key range, where to resume, and whether to follow. */
export interface ChangesOptions<K> extends KeyRange<K> {
  /** The seq after which to read (default 0: every key the view holds or held). */
  since?: number
  /** After the keys changed so far, follow every later change (as `watch` does, without `previous`). */
  live?: boolean
  /** With `live`: as `WatchOptions.maxBuffer`. */
  maxBuffer?: number
  /** As `WatchOptions.valueEncoding`. */
  valueEncoding?: string
}

/** A key changed after `since`, as `db.changes` yields it: once a key, with its value now. */
export interface FeedChange<K, V> {
  /** 'put': the key reads as `value` now; 'del': it reads as absent. */
  type: 'put' | 'del'
  /** The key, in the database's key encoding. */
  key: K
  /** What the key reads as now (undefined for 'del'). */
  value: V | undefined
  /** The seq of the commit that last changed the key (store the last one to resume). */
  seq: number
}

/** An async iterable of changes; `close()` (or `break` in `for await`) ends it. */
export interface ChangeIterator<T> extends AsyncIterableIterator<T> {
  /** Ends the iteration and releases what it holds of the view. */
  close: () => void
}

/** An invite as `db.invites()` lists it. */
export interface InviteInfo {
  /** Its id (hex): `revokeInvite` takes it, or the invite string. */
  id: string
  /** What a device pairing with it becomes. */
  role: 'writer' | 'reader'
  /** When it stops working, ms since the epoch. */
  expires: number
  /** How many devices it may admit. */
  uses: number
  /** How many devices it admitted. */
  used: number
  /** Whether it was revoked (`revokeInvite`). */
  revoked: boolean
}
