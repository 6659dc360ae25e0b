/**
 * Every error meshbee raises on purpose carries a stable `code`. The codes are part of the public
 * API (listed in the README) and do not change between versions. Plain TypeErrors are kept for
 * programmer mistakes such as a wrong argument type; they carry a code too.
 */

/** meshbee's own error codes (abstract-level's `LEVEL_*` codes apply to its API too); README.md lists when each is raised. */
export type ErrorCode =
  | 'MESHBEE_NOT_WRITABLE'
  | 'MESHBEE_KEY_MISMATCH'
  | 'MESHBEE_INVALID_KEY'
  | 'MESHBEE_INVALID_ARGUMENT'
  | 'MESHBEE_TOO_LARGE'
  | 'MESHBEE_WRITER_REMOVED'
  | 'MESHBEE_INVALID_CUTS'
  | 'MESHBEE_CLOSED'
  | 'MESHBEE_STORAGE'
  | 'MESHBEE_CLOCK_BEHIND'
  | 'MESHBEE_CLOCK_AHEAD'
  | 'MESHBEE_WATCH_OVERFLOW'
  | 'MESHBEE_FEED_RESET'
  | 'MESHBEE_FEED_COMPACTED'
  | 'MESHBEE_HISTORY_CLEARED'
  | 'MESHBEE_INDEX_NOT_FOUND'
  | 'MESHBEE_INDEX_STALE'
  | 'MESHBEE_NOT_SYNC'
  | 'MESHBEE_HYPERCORE_UNSUPPORTED'
  | 'MESHBEE_NO_READ_KEY'
  | 'MESHBEE_BLIND'
  | 'MESHBEE_BAD_INVITE'
  | 'MESHBEE_INVITE_USED'
  | 'MESHBEE_INVITE_EXPIRED'
  | 'MESHBEE_INVITE_REVOKED'
  | 'MESHBEE_INVITE_REFUSED'
  | 'MESHBEE_PAIR_TIMEOUT'

/**
 * An error meshbee raises on purpose at run time (storage, membership, a closed database...).
 * Match on `code`, which is stable; the message is for people.
 */
export class MeshError extends Error {
  /** The stable code: one of {@link ErrorCode}. */
  readonly code: ErrorCode

  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'MeshError'
  }
}

/** A malformed argument (a bad writer key, cuts, patch fields...): a programmer's mistake, with a stable code. */
export class MeshTypeError extends TypeError {
  /** The stable code: one of {@link ErrorCode}. */
  readonly code: ErrorCode

  constructor (code: ErrorCode, message: string) {
    super(message)
    this.code = code
    this.name = 'MeshTypeError'
  }
}

export const notWritable = (): MeshError =>
  new MeshError('MESHBEE_NOT_WRITABLE', 'This peer is not a member of the database: ask a member to addWriter(db.writerKey)')

export const noReadKey = (epoch: string): MeshError =>
  new MeshError('MESHBEE_NO_READ_KEY', `A block is encrypted under key epoch ${epoch}, which this peer does not hold (not granted to it yet, or it was removed)`)

export const blind = (): MeshError =>
  new MeshError('MESHBEE_BLIND', 'This peer seeds the database blind (it holds no encryption key): it carries the logs but cannot read them')

export const keyMismatch = (stored: string, given: string): MeshError =>
  new MeshError('MESHBEE_KEY_MISMATCH', `The storage holds database ${stored}, not ${given}`)

export const invalidArgument = (what: string): MeshTypeError =>
  new MeshTypeError('MESHBEE_INVALID_ARGUMENT', what)

export const tooLarge = (what: string, size: number, max: number): MeshError =>
  new MeshError('MESHBEE_TOO_LARGE', `${what} is ${size} bytes, the limit is ${max}`)

export const writerRemoved = (key: string): MeshError =>
  new MeshError('MESHBEE_WRITER_REMOVED', `Writer ${key} was removed and cannot be added again: the device needs a new writer key`)

export const closed = (): MeshError =>
  new MeshError('MESHBEE_CLOSED', 'The database is closed')

export const clockBehind = (ms: number): MeshError =>
  new MeshError('MESHBEE_CLOCK_BEHIND', `This peer's clock runs ${ms} ms behind the stamp of the entry that added it (more than maxDrift): ` +
    'a membership change stamped now would sort before its own add and never count. Correct the clock, or retry once it has passed that stamp')

export const clockAhead = (last: number, cap: number, lead: number): MeshError =>
  new MeshError('MESHBEE_CLOCK_AHEAD', `This writer's log already holds stamps up to ${new Date(last).toISOString()}, at or past the lead bound ` +
    `${new Date(cap).toISOString()} (${lead} ms past the newest entry it has seen from another writer): its clock ran ahead while it wrote. ` +
    `Nothing is appended. It can write again once it sees another writer's entry stamped ${new Date(last - lead).toISOString()} or later`)

export const watchOverflow = (max: number, seq: number): MeshError =>
  Object.assign(new MeshError('MESHBEE_WATCH_OVERFLOW', `More than ${max} changes waited to be read: the stream stopped. ` +
    `Everything up to seq ${seq} was read; db.changes({ since: ${seq} }) reads what changed after it`), { seq })

export const feedReset = (epoch: number): MeshError =>
  Object.assign(new MeshError('MESHBEE_FEED_RESET', `The view was folded anew from the logs (its change feed restarted at seq ${epoch}): ` +
    'what changed before that, deletions among it, cannot be listed. Read the feed from the start again (changes({ since: 0 }) lists every key once) and go on from there'), { seq: epoch - 1 })

export const feedCompacted = (seq: number): MeshError =>
  Object.assign(new MeshError('MESHBEE_FEED_COMPACTED', `Deletions up to seq ${seq} of the change feed were dropped with their tombstones (compaction): ` +
    'a reader that stopped before them cannot be told of them. Read the feed from the start again (changes({ since: 0 }) lists every key once) and go on from there'), { seq })

export const historyCleared = (writer: string, from: number, to: number): MeshError =>
  new MeshError('MESHBEE_HISTORY_CLEARED', `Log ${writer.slice(0, 8)} between lengths ${from} and ${to} was compacted on this peer and no connected peer ` +
    'serves those blocks: connect a peer that keeps full history (meshbee seed) to read it')

export const indexNotFound = (name: string): MeshError =>
  new MeshError('MESHBEE_INDEX_NOT_FOUND', `No index named ${name}: declare it (the indexes option, db.defineIndex, meshbee index add)`)

export const indexStale = (name: string, code: boolean): MeshError =>
  new MeshError('MESHBEE_INDEX_STALE', code
    ? `Index ${name} is kept by a function this process does not declare, and a process without it wrote since: declare it (with its function) to rebuild it`
    : `Index ${name} is being built, or its build was cut short: it is built again when the database opens (or declare it again)`)

export const unknownWriter = (id: string): MeshError =>
  new MeshError('MESHBEE_INVALID_KEY', `Unknown writer ${id}`)

export const notAMember = (id: string): MeshError =>
  new MeshError('MESHBEE_INVALID_KEY', `Writer ${id} is not a member`)

export const notOpened = (): MeshError =>
  new MeshError('MESHBEE_CLOSED', 'The database has not been opened yet')

export const storageMissing = (location: string): MeshError =>
  new MeshError('MESHBEE_STORAGE', `${location} does not exist (createIfMissing is false)`)

export const storageExists = (location: string): MeshError =>
  new MeshError('MESHBEE_STORAGE', `${location} exists (errorIfExists is true)`)

/** An error's message and its cause's (a storage error often says what failed only in its cause). */
function reason (err: unknown): string {
  const e = err as { message?: unknown, cause?: { message?: unknown } } | null | undefined
  const message = String(e?.message ?? err)
  const cause = e?.cause?.message
  return typeof cause === 'string' && !message.includes(cause) ? `${message}: ${cause}` : message
}

export const viewRefused = (err: unknown): MeshError =>
  new MeshError('MESHBEE_STORAGE', `The view's LevelDB refused a write (${reason(err)}). Nothing acknowledged is lost: ` +
    'the logs hold every write, and the view keeps the commits LevelDB lacks readable. Free disk space and retry: ' +
    'the view retries on its own and takes writes again once LevelDB does. If it still refuses then, reopen the database', { cause: err })

export const logRefused = (err: unknown): MeshError =>
  new MeshError('MESHBEE_STORAGE', `The own log's storage refused an append (${reason(err)}): nothing was appended. ` +
    'Free disk space and retry. If it still refuses then, close and reopen the database: ' +
    'the log store (RocksDB) takes no write after a failed one until it is reopened', { cause: err })

/**
 * The Hypercore that the database's Corestore loads cannot take meshbee's replicator workaround
 * (lib/hypercore-patch.ts): without it, a peer can stop receiving a writer's entries.
 */
export const hypercoreUnsupported = (what: string): MeshError =>
  new MeshError('MESHBEE_HYPERCORE_UNSUPPORTED', `The Hypercore this database's Corestore loads ${what}: meshbee's workaround for a lost ` +
    'length announcement in its replicator cannot be applied, and without it a peer can stop receiving a writer\'s entries. ' +
    'Give corestore the Hypercore meshbee is tested with (the version in meshbee\'s package.json, e.g. through npm "overrides")')

export const invalidCuts = (what: string): MeshTypeError =>
  new MeshTypeError('MESHBEE_INVALID_CUTS', what)

export const notSync = (): MeshError =>
  new MeshError('MESHBEE_NOT_SYNC', 'The key holds a document or a set, which is assembled from its fields or members: read it with get(), not getSync()')

/** An error with one of abstract-level's own codes, as abstract-level makes them. */
export function levelError (code: 'LEVEL_READONLY' | 'LEVEL_DATABASE_NOT_OPEN', message: string): Error & { code: string } {
  const err = new Error(message) as Error & { code: string }
  err.code = code
  return err
}

/**
 * A sparse fetch that cannot go on (a block not served in time, a tree node missing). It never
 * reaches the app: the log is then downloaded whole.
 */
export const fetchFailed = (what: string): Error => new Error(`sparse fetch: ${what}`)
