/**
 * The merge engine, as a composition root: it opens the store and the view, owns the one
 * serialized queue that folds and own writes run in, schedules folds as logs grow, and wires the
 * rooms that do the work — each writer's log (writer-log.ts) and its catch-up (catchup.ts), the
 * fold (fold.ts), the view commit (commit.ts), own writes (own-writes.ts) and inspection
 * (inspect.ts). None of them imports the engine: what they need is given at construction.
 *
 * State per user key in the view is the set of slots (each member's latest entry for the key at
 * its cut); the rendered value is a pure function of the slots. A fold replaces the slots of the
 * keys each writer changed between its checkpoint and how far it can be read (a Hyperbee diff),
 * so its cost follows the changed keys, not history, and the view stays a pure function of the
 * cuts even when a cut moves back (a removal).
 */
import { EventEmitter } from 'node:events'
import { statSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import Corestore from 'corestore'
import Hyperbee from 'hyperbee'
import type Hypercore from 'hypercore'
import { type Logger, pino } from 'pino'
import { HLC, stamp as mkStamp, type Stamp } from '../crdt/hlc.js'
import { CatchUp, INFLIGHT, loadFetched, setWindow } from './catchup.js'
import { ViewCommit } from './commit.js'
import { ADD_READER, ADD_WRITER, MAX_LEAD, REMOVE_WRITER, decodeEntry, type Entry } from './entry.js'
import type { WriteOp } from './entry-rule.js'
import { blind, closed, invalidArgument, keyMismatch } from './errors.js'
import { Fold } from './fold.js'
import { Indexes, type IndexSpec, type RawMap, type RawText } from './indexes.js'
import { Inspection, type KeyEntryVersion, type WriterChange } from './inspect.js'
import { countsTo, live, type Member } from './membership.js'
import { OwnWrites } from './own-writes.js'
import type { CompactProgress, CompactResult, KeyType, Stats, WriterInfo } from './types.js'
import { AUTO_COMPACT_EVERY, CUTS_EVERY, Compactor, loadCleared } from './compaction.js'
import { readRecord, Stability } from './stability.js'
import { decodeNode } from './blocks.js'
import { VIEW_FORMAT, ViewStore, seqBytes } from './view.js'
import { recomputeDigest, verifyView, type VerifyReport } from './verify.js'
import { WriterLog } from './writer-log.js'
import { Privacy } from './privacy.js'
import { Invites } from './invites.js'
import { IDENTITY, OWN_LOG } from './identity.js'
import type { DueGrant } from './epochs.js'
import { digestFromBuffer } from './digest.js'
import './hypercore-patch.js' // a lost length announcement in Hypercore's replicator: see the file

export type { WriteOp }

/** The own core's user data key of the change feed's floor (lib/changes.ts `FloorStore`). */
const SEQ_FLOOR = 'meshbee/seq-floor'
/** The own core's user data key of what this peer keeps of the logs ('full' or 'live'). */
const HISTORY = 'meshbee/history'

export interface EngineOptions {
  key?: Uint8Array
  /**
   * @internal The test hook `testHooks.format` set from the start, before the open's own fold (a
   * peer that plays an older release must not append a stability record while it opens).
   */
  testFormat?: 1
  /** Where the view lives when `storage` is a Corestore. */
  viewPath?: string
  logger?: Logger
  maxDrift?: number
  /** The wall clock (ms) the HLC reads; Date.now by default. Tests pass a controlled one. */
  wallClock?: () => number
  /**
   * A remote log this many blocks or more ahead of what is held locally is caught up sparsely:
   * only the blocks its Hyperbee diff needs are fetched, folded, and the rest of the log is
   * downloaded afterwards (for seeding). Default 256; Infinity turns it off.
   */
  sparseAfter?: number
  /**
   * The indexes to keep (lib/indexes.ts): when given, exactly these (others are dropped); when
   * absent, the ones the view declares.
   */
  indexes?: Record<string, IndexSpec>
  /** Create the database encrypted (lib/privacy.ts). */
  encrypted?: boolean
  /** A key of an encrypted database, handed over out of band: this peer reads it. */
  encryptionKey?: Uint8Array
  /** 'full': this peer never clears log blocks (an archival seeder); 'live' (default): `compact()` may. */
  history?: 'full' | 'live'
  /** Compact after folds, at most every this many ms (true: every AUTO_COMPACT_EVERY); off by default. */
  autoCompact?: boolean | number
  /** ms between this writer's automatic stability records (0: only `compact()` records); CUTS_EVERY by default. */
  cutsEvery?: number
}

/**
 * Corestore writes its device file (`CORESTORE`) once, when it creates a store: it opens the file
 * (empty), then writes it in one go. A process killed in between leaves it empty, and Corestore
 * then refuses the store forever ("Invalid device file, was modified"). An empty device file
 * carries nothing (the store's database only opens after the file is written, so nothing else was
 * stored yet): removing it lets Corestore write it anew.
 */
function removeTornDeviceFile (cores: string): void {
  const file = join(cores, 'CORESTORE')
  try {
    if (statSync(file).size === 0) unlinkSync(file)
  } catch {}
}

export class Engine extends EventEmitter {
  readonly store: Corestore
  readonly view: ViewStore
  readonly log: Logger
  readonly stats: Stats = { folds: 0, diffEntries: 0, keysMerged: 0, badEntries: 0, clampedStamps: 0, sparseFetches: 0, sparseBlocks: 0, sparseSkipped: 0, rebuilds: 0, indexErrors: 0, lockedReads: 0, blocksCleared: 0, tombstonesCollected: 0 }
  /** Every writer log opened, by writer key (hex), and its catch-up. */
  readonly writers = new Map<string, WriterLog>()
  readonly catchUps = new Map<string, CatchUp>()
  /** The length of each writer's log the view reflects, by writer key (hex); stored with the view. */
  readonly checkpoints = new Map<string, number>()
  readonly hlc: HLC
  /**
   * Test hooks, unset in use. `runScan` sees whether a long fold step mostly adds new keys and
   * decides whether to read its blocks one by one instead of diffing the tree.
   */
  readonly testHooks: { runScan?: (mostlyNewKeys: boolean) => boolean, format?: 1 | 2 | 3 } = {}
  key!: Buffer
  own!: WriterLog
  creator!: WriterLog

  private readonly wallClock: () => number
  private readonly sparseAfter: number
  /** Whether the database is encrypted, this peer's keys, and a blind seeder's following (lib/privacy.ts). */
  readonly privacy: Privacy
  /** The invites this peer made, and the pairing host that answers them while joined (lib/invites.ts). */
  readonly invites: Invites
  private readonly givenKey: Buffer | null
  /** The view commit, and its change feed (`commit.feed`: what `watch` and `changes` read). */
  readonly commit: ViewCommit
  /** The secondary indexes (`db.query`). */
  readonly indexes: Indexes
  private readonly indexOptions: Record<string, IndexSpec> | null
  private readonly folder: Fold
  /** What this peer keeps of the logs: the option, else what the directory remembers. */
  history: 'full' | 'live' = 'live'
  private readonly historyOption: 'full' | 'live' | null
  /** Which tombstones are stable (lib/stability.ts), and compaction (lib/compaction.ts). */
  readonly stability: Stability
  private readonly compactor: Compactor
  private readonly writes: OwnWrites
  private readonly inspection: Inspection
  private queue: Promise<unknown> = Promise.resolve()
  private pending: Promise<boolean> | null = null
  /**
   * The own writes queued, in call order, each with a marker for any other task (not a fold)
   * queued after it: a fold lets the writes at the head in at its yield points (`letWritesIn`),
   * and no write passes a marker.
   */
  private readonly waiting: Array<WaitingWrite | object> = []
  private closing = false

  constructor (storage: string | Corestore, opts: EngineOptions = {}) {
    super()
    const engine = this
    if (typeof storage === 'string') {
      removeTornDeviceFile(join(storage, 'cores'))
      this.store = new Corestore(join(storage, 'cores'))
      this.view = new ViewStore(join(storage, 'view'))
    } else {
      if (typeof opts.viewPath !== 'string') throw invalidArgument('A Corestore as storage needs opts.viewPath, a directory for the view')
      // a session keeps the caller's namespace only if told so (Corestore 7's session() drops it)
      this.store = storage.session({ namespace: (storage as unknown as { ns?: Buffer }).ns })
      this.view = new ViewStore(opts.viewPath)
    }
    this.log = opts.logger ?? pino({ level: 'silent' })
    this.wallClock = opts.wallClock ?? Date.now
    this.sparseAfter = opts.sparseAfter ?? 256
    if (opts.testFormat === 1) this.testHooks.format = 1
    this.hlc = new HLC({ maxDrift: opts.maxDrift, wallClock: this.wallClock, maxLead: MAX_LEAD })
    this.givenKey = opts.key === undefined ? null : Buffer.from(opts.key)
    this.privacy = new Privacy({ encrypted: opts.encrypted, encryptionKey: opts.encryptionKey }, () => this.own.core, this.writers)
    this.invites = new Invites({
      get key () { return engine.key },
      own: () => this.own.core,
      admit: async (role, key) => {
        if (role === 'writer') await this.changeMembership(ADD_WRITER, key)
        else if (this.privacy.mode === 'encrypted') await this.changeMembership(ADD_READER, key)
        // a reader of a plain database needs nothing more than its key
      },
      encryptionKey: () => this.privacy.handOver(),
      isLive: (id) => live(this.folder.members.get(id)),
      wallClock: this.wallClock
    })
    this.indexes = new Indexes(this.view, this.stats, this.log, (event, ...args) => this.emit(event, ...args))
    this.indexOptions = opts.indexes ?? null
    // the change feed's floor lives with the identity, in the own log's store (lib/changes.ts)
    this.commit = new ViewCommit(this.view, {
      get: async () => {
        const raw = await this.own.core.getUserData(SEQ_FLOOR) as Buffer | null
        return raw === null || raw.byteLength !== 8 ? 0 : Number(raw.readBigUInt64BE(0))
      },
      set: async (floor) => { await this.own.core.setUserData(SEQ_FLOOR, seqBytes(floor)) }
    }, this.indexes)
    const members = (): Map<string, Member> => this.folder.members
    this.stability = new Stability({
      writers: this.writers,
      checkpoints: this.checkpoints,
      view: this.view,
      commit: this.commit,
      stats: this.stats,
      log: this.log,
      members,
      own: () => this.own,
      // a peer writing format 1 (the test hook) is an older release: it has no compaction, and a
      // format-1 write restates the writer's contribution from its slot, which must stay
      collects: () => this.testHooks.format !== 1,
      passed: (s) => { this.hlc.restore(s) }
    })
    this.commit.dataRead = () => this.stability.dataRead()
    this.folder = new Fold({
      writers: this.writers,
      catchUps: this.catchUps,
      checkpoints: this.checkpoints,
      view: this.view,
      commit: this.commit,
      hlc: this.hlc,
      stats: this.stats,
      log: this.log,
      wallClock: this.wallClock,
      key: () => this.key,
      openWriter: async (key) => await this.openWriter(this.store.get({ key })),
      membersRead: (members) => { this.privacy.refresh(this.writers.values(), members) },
      closing: () => this.closing,
      emit: (event, ...args) => this.emit(event, ...args),
      stepped: (w, to, data, cuts) => { this.stability.stepped(w, to, data, cuts) },
      landed: (ok) => { this.stability.landed(ok) },
      trusted: (id) => this.stability.trusted(id),
      dropped: () => this.stability.hasDropped,
      records: async () => { await this.stability.refresh() }
    })
    this.writes = new OwnWrites({
      view: this.view,
      commit: this.commit,
      hlc: this.hlc,
      log: this.log,
      checkpoints: this.checkpoints,
      wallClock: this.wallClock,
      own: () => this.own,
      members,
      fold: async () => await this.folder.run(),
      updated: () => this.emit('update'),
      format: () => this.testHooks.format ?? 3,
      // a blind or undecided peer never writes: it would append in clear to an encrypted database
      canWrite: () => this.privacy.mode === 'blind' ? 'blind' : this.privacy.mode === null ? 'undecided' : 'yes',
      seal: async () => { await this.sealing() },
      wrote: (len) => { this.stability.wrote(len) }
    })
    this.historyOption = opts.history ?? null
    const auto = opts.autoCompact === true ? AUTO_COMPACT_EVERY : typeof opts.autoCompact === 'number' ? opts.autoCompact : 0
    this.compactor = new Compactor({
      writers: this.writers,
      checkpoints: this.checkpoints,
      stability: this.stability,
      view: this.view,
      stats: this.stats,
      log: this.log,
      dirs: { logs: typeof storage === 'string' ? join(storage, 'cores') : null, view: this.view.location },
      history: () => this.history,
      compacted: (done) => { this.emit('compact', done) },
      members,
      // (a peer writing format 1, the test hook, plays an older release: it writes no record)
      writable: () => this.writes.writable() && this.testHooks.format !== 1,
      compactLogs: async () => await (this.store as unknown as { storage: { compact: () => Promise<unknown> } }).storage.compact(),
      record: async (vector) => {
        await this.writes.appendCuts(vector)
        await this.folder.run()
      },
      // (an encrypted database's logs are never cleared; a format-1 peer plays an older release)
      farewell: async (vector) => {
        if (this.privacy.mode !== 'plain' || this.testHooks.format === 1) return
        await this.writes.appendCuts(vector, true)
        await this.folder.run()
      },
      clock: () => this.hlc.last
    }, opts.cutsEvery ?? CUTS_EVERY, auto)
    this.inspection = new Inspection({ writers: this.writers, checkpoints: this.checkpoints, view: this.view, members, key: () => this.key })
  }

  /** The members found by the last fold, by writer key (hex). */
  get members (): ReadonlyMap<string, Member> {
    return this.folder.members
  }

  /** The view digest (see digest.ts), current with the committed view. */
  get digest (): bigint {
    return this.commit.digest
  }

  get writable (): boolean {
    return this.writes.writable()
  }

  async open (): Promise<void> {
    await this.store.ready()
    // an unreadable view is removed and rebuilt from the logs (it is derived from them)
    let rebuild = await this.view.open()
    // once the view's LevelDB takes writes again after refusing them, fold what was refused meanwhile
    this.view.onRecover = () => { this.schedule() }
    const ownCore = this.store.get({ name: OWN_LOG })
    await ownCore.ready()
    // The database this directory belongs to: kept in the own log's store (it survives a lost
    // view) and in the view (directories written before the log store kept it).
    const logged = await ownCore.getUserData(IDENTITY) as Buffer | null
    const stored = await this.view.getMeta('key')
    const known = logged ?? stored ?? null
    if (known !== null && this.givenKey !== null && !known.equals(this.givenKey)) {
      throw keyMismatch(known.toString('hex'), this.givenKey.toString('hex'))
    }
    this.key = this.givenKey ?? known ?? Buffer.from(ownCore.key)
    // encrypted or not, and this peer's keys, before any log is opened (each decrypts with them)
    this.own = { core: ownCore } as WriterLog
    await this.privacy.open(known === null && ownCore.length === 0, this.key.equals(ownCore.key))
    this.own = await this.openWriter(ownCore, true)
    await this.invites.load()
    if (stored !== undefined && !stored.equals(this.key)) rebuild ??= 'the view belongs to another database than its logs'
    await this.migrateView()
    for (const [id, len] of await this.view.readCheckpoints()) this.checkpoints.set(id, len)
    this.creator = this.writers.get(this.key.toString('hex')) ?? await this.openWriter(this.store.get({ key: this.key }))
    // a view that reflects more of a log than the log store holds: the logs were lost or replaced
    for (const w of [this.own, this.creator]) {
      if ((this.checkpoints.get(w.id) ?? 0) > w.core.length) rebuild ??= `the view reflects ${this.checkpoints.get(w.id) ?? 0} entries of log ${w.id.slice(0, 8)}, which holds ${w.core.length}`
    }
    const hash = await this.view.getMeta('hash')
    this.commit.digest = hash === undefined ? 0n : digestFromBuffer(hash)
    await this.commit.feed.open()
    // damaged rows (flipped bytes in a table file) no longer sum to the stored digest
    if (rebuild === null && this.checkpoints.size > 0 && await recomputeDigest(this.view) !== this.commit.digest) {
      rebuild = "the view's rows do not match its digest"
    }
    this.commit.gen = await this.view.readSeq('gen') ?? 0
    this.commit.graves = await this.view.readSeq('graves') ?? 0
    this.stats.tombstonesCollected = await this.view.readSeq('collected-count') ?? 0
    this.stats.blocksCleared = await this.view.readSeq('cleared-count') ?? 0
    // what this peer keeps of the logs: as given, else as given last (lib/compaction.ts)
    const kept = (await this.own.core.getUserData(HISTORY))?.toString()
    if (this.historyOption !== null && this.historyOption !== kept) await this.own.core.setUserData(HISTORY, Buffer.from(this.historyOption))
    this.history = this.historyOption ?? (kept === 'full' ? 'full' : 'live')
    if (rebuild !== null) await this.rebuild(rebuild)
    await this.stability.load()
    if (logged === null) await this.own.core.setUserData(IDENTITY, this.key)
    if (stored === undefined || !stored.equals(this.key)) await this.view.write([this.view.putMeta('key', this.key)])

    const saved = await this.view.readStamp()
    if (saved !== null) this.hlc.restore(saved)
    const seen = await this.view.readStamp('seen')
    if (seen !== null) this.hlc.restoreSeen(seen)
    await this.restoreClock()
    // the functions of the declared map and text indexes, before the open's fold: it keeps them
    const code = new Map<string, RawMap | RawText>()
    for (const [name, spec] of Object.entries(this.indexOptions ?? {})) {
      if ('map' in spec) code.set(name, spec.map)
      else if ('text' in spec && typeof spec.text === 'function') code.set(name, spec.text)
    }
    await this.indexes.open(code)
    await this.update()
    // an encrypted log's own entries are sealed: readable once the fold has read this peer's
    // epoch keys, so a view that lost its clock (a rebuild) restores it from them only now
    if (this.own.encrypted) await this.restoreClock()
    await this.locked(async () => {
      const want = this.indexOptions
      if (want !== null) {
        for (const i of this.indexes.list()) if (!Object.hasOwn(want, i.name)) await this.indexes.drop(i.name)
        for (const [name, spec] of Object.entries(want)) await this.indexes.define(name, spec)
      }
      // a build cut short (a crash, a stop) is done again
      await this.indexes.repair()
    })
  }

  /** Declares an index (rebuilt from the view when new or changed); true if it was built. */
  defineIndex (name: string, spec: unknown): Promise<boolean> {
    return this.locked(async () => await this.indexes.define(name, spec))
  }

  /** Removes an index; true if there was one. */
  dropIndex (name: string): Promise<boolean> {
    return this.locked(async () => await this.indexes.drop(name))
  }

  /**
   * Empties the view and lets the next fold rebuild it from the logs (the caller folds). Emits
   * 'rebuild' with the reason.
   */
  private async rebuild (reason: string): Promise<void> {
    this.log.warn({ reason }, 'rebuilding the view from the logs')
    this.stats.rebuilds++
    this.emit('rebuild', reason)
    await this.view.clearDerived()
    await this.view.write([this.view.putMeta('format', Buffer.from([VIEW_FORMAT])), this.view.putMeta('key', this.key)])
    await this.view.settle()
    this.checkpoints.clear()
    this.commit.digest = 0n
    this.commit.gen = this.commit.graves = 0
    await this.stability.load()
    await this.commit.feed.reset()
  }

  /**
   * Checks the view against the logs (lib/verify.ts); with `repair`, a view that disagrees is
   * rebuilt from them and folded again before this resolves.
   */
  verify (repair: boolean, progress?: (done: number, total: number) => void): Promise<VerifyReport & { repaired: boolean }> {
    return this.locked(async () => {
      if (this.privacy.mode === 'blind') throw blind()
      // (undecided: opened by key, nothing of the creator's log held yet; the view is empty)
      if (this.privacy.mode !== null) await this.folder.run()
      const report = await verifyView({ view: this.view, writers: this.writers, checkpoints: this.checkpoints, digest: this.commit.digest }, progress)
      if (report.ok || !repair) return { ...report, repaired: false }
      await this.rebuild(report.problems[0] ?? 'verify found damage')
      await this.folder.run()
      return { ...report, repaired: true }
    })
  }

  /**
   * A view written in another layout (an older release's) is emptied and folded anew from the
   * logs: it is derived, the logs are the truth. The database key stays.
   */
  private async migrateView (): Promise<void> {
    const format = await this.view.getMeta('format')
    if (format !== undefined && format.byteLength === 1 && format[0] === VIEW_FORMAT) return
    if ((await this.view.readCheckpoints()).size > 0) {
      this.log.info({ from: format?.[0] ?? 1, to: VIEW_FORMAT }, 'the view has another layout: rebuilding it from the logs')
      await this.view.clearDerived()
    }
    await this.view.write([this.view.putMeta('format', Buffer.from([VIEW_FORMAT]))])
    await this.view.settle()
  }

  async close (): Promise<void> {
    this.closing = true
    this.compactor.close()
    await this.invites.detach().catch(() => {})
    await this.queue.catch(() => {})
    for (const w of this.writers.values()) await w.bee.close().catch(() => {})
    await this.store.close()
    await this.view.close()
  }

  /** Raises the clock to the newest own entry's stamp, and what it had seen. */
  private async restoreClock (): Promise<void> {
    // the own stability record carries the clock it had (its own stamp is zero): every peer that
    // read it trusts this writer's later entries to be stamped past it (lib/stability.ts)
    const record = this.own.core.length > 1 ? await readRecord(this.own, this.own.core.length) : null
    if (record?.at != null) this.hlc.restore(record.at)
    const last = await this.lastOwnEntry()
    if (last === null) return
    this.hlc.restore(last.stamp)
    // what the newest own entry had seen, should the view have lost it (its wall is all it keeps)
    if (last.clock !== undefined && last.clock.seen > 0) this.hlc.restoreSeen(mkStamp(last.clock.seen, 0))
  }

  private async lastOwnEntry (): Promise<Entry | null> {
    const core = this.own.core
    for (let i = core.length - 1; i >= 1; i--) {
      // (a block compaction cleared is not waited for: Hyperbee's getBySeq would wait)
      const block = await core.get(i, { wait: false }).catch(() => null)
      if (block === null) continue
      try {
        const value = decodeNode(block).value
        if (value === null) continue
        const e = decodeEntry(value)
        // key bookkeeping carries the zero stamp: the clock is restored from the entry before it
        if (e.stamp.wall === 0) continue
        return e
      } catch {
        continue
      }
    }
    return null
  }

  /** Opens a writer's log (once), its catch-up, and the events that schedule folds as it grows. */
  private async openWriter (core: Hypercore, local = false): Promise<WriterLog> {
    await core.ready()
    await this.privacy.prepare(core)
    const id = core.key.toString('hex')
    const existing = this.writers.get(id)
    if (existing !== undefined) {
      if (existing.core !== core) await core.close()
      return existing
    }
    const bee = new Hyperbee(core, { keyEncoding: 'binary', valueEncoding: 'binary', extension: false })
    await bee.ready()
    // Hyperbee raises the core's request window to 256-512 blocks on open (its nodes are small).
    // A whole-log download then asks for hundreds of blocks before any proof has landed, so each
    // request carries a proof up to the root: on a 500-block log, 8 tree nodes per block instead
    // of ~1, read, sent, hashed and stored. Hypercore's own window (16 blocks, widened with the
    // link's round-trip time) cuts a whole-log download's CPU time by a third (BENCHMARKS.md);
    // a sparse fetch, whose requests are few and latency-bound, gets the wide window back.
    setWindow(core, INFLIGHT)
    // (the lengths kept in the log's store, read first: from the WriterLog on, which takes the log's
    // length as a signed one, nothing waits until the append listener is on, or an append between
    // would be missed and the fold would wait for the next one, maybe for ever)
    const cleared = await loadCleared(core)
    const fetched = await loadFetched(core)
    const w = new WriterLog(core, bee, local, () => this.checkpoints.get(id) ?? 0, (yes) => this.testHooks.runScan?.(yes) ?? yes)
    w.clearedTo = cleared
    // (the tree a sparse fetch brought, past what is contiguous: still held)
    if (fetched > w.contiguous && fetched <= core.length) w.fetchedEnd = fetched
    w.encrypted = this.privacy.mode === 'encrypted' || this.privacy.mode === 'blind'
    const privacy = this.privacy
    const sparseAfter = this.sparseAfter
    const catchUp = new CatchUp(w, {
      // an encrypted log's membership is read from its clear blocks, all of them: no sparse fetch
      get sparseAfter () { return privacy.mode === 'plain' ? sparseAfter : Infinity },
      log: this.log,
      closing: () => this.closing,
      schedule: () => { this.schedule() },
      counted: (outcome, blocks) => {
        if (outcome === 'skipped') {
          this.stats.sparseSkipped++
          return
        }
        this.stats.sparseFetches++
        this.stats.sparseBlocks += blocks
      }
    })
    this.writers.set(id, w)
    this.catchUps.set(id, catchUp)
    if (!local) {
      // another peer's log: keep all of it, fold as it grows (it may share our Corestore)
      if (!core.writable) catchUp.resumeDownload()
      core.on('append', () => {
        w.appended()
        catchUp.maybeFetch(this.checkpoints.get(id) ?? 0, countsTo(this.members.get(id)))
        this.schedule()
      })
      // during a sparse fetch the fetch itself schedules the fold, once, when all its blocks are in
      core.on('download', (index: number) => {
        if (catchUp.fetching) return
        const cut = (): number => this.members.get(id)?.cut ?? Infinity
        if (w.movable(cut())) this.schedule()
        // a membership entry is read once its block is contiguous, at a signed length or not
        else w.downloaded(index).then((entry) => { if (entry && w.movable(cut())) this.schedule() }, () => {})
      })
    }
    return w
  }

  /**
   * Runs `fn` after every earlier locked task: folds and own writes never interleave, except that
   * a fold lets the own writes queued behind it run at its yield points (`letWritesIn`): `kind`
   * 'fold' is such a fold, 'write' an own write (`write`), 'other' anything else, which no own
   * write queued after it passes.
   */
  private locked<T> (fn: () => Promise<T>, kind: 'fold' | 'write' | 'other' = 'other'): Promise<T> {
    const marker = kind === 'other' ? {} : null
    if (marker !== null) this.waiting.push(marker)
    const run = this.queue.then(async () => {
      // every write queued before this task has run (in its turn or at a fold's yield point)
      if (marker !== null) this.waiting.splice(this.waiting.indexOf(marker), 1)
      if (this.closing) throw closed()
      return await fn()
    })
    this.queue = run.catch(() => {})
    return run
  }

  /** Coalesces bursts of remote appends into one fold. */
  schedule (): void {
    if (this.closing || this.pending !== null) return
    this.update().catch((err: unknown) => {
      if (!this.closing) this.log.error({ err }, 'fold failed')
    })
  }

  /**
   * Folds everything available locally now. Resolves true if the view changed. The fold lets own
   * writes queued behind it in between its commits (see `letWritesIn`).
   */
  update (): Promise<boolean> {
    if (this.pending !== null) return this.pending
    const p = this.locked(async () => {
      this.pending = null
      const mode = await this.privacy.decide(this.creator.core, () => { this.schedule() })
      // opened by key, the creator's first block not here yet: nothing to read (a creator that has
      // written nothing is the only member, which the fold finds without reading a block)
      if (mode === null && this.creator.core.length > 0) return false
      if (mode === 'blind') {
        for (const w of this.writers.values()) w.encrypted = true
        await this.privacy.follow(this.writers, async (key) => await this.openWriter(this.store.get({ key })))
        return false
      }
      const changed = await this.folder.run(async (staged) => { await this.letWritesIn(staged) })
      if (mode === 'encrypted') await this.keysDue()
      await this.compactor.afterFold(() => { this.schedule() })
      return changed
    }, 'fold')
    this.pending = p
    p.catch(() => {}).finally(() => { if (this.pending === p) this.pending = null })
    return p
  }

  /**
   * Appends own writes as one atomic batch and folds them into the view before resolving. Queued
   * behind a fold, the write runs at the fold's next yield point, so it waits for at most one
   * commit of the fold (or one slice of a long read), not for the whole fold.
   */
  write (ops: WriteOp[]): Promise<void> {
    const w = new WaitingWrite(ops.map((op) => op.key), async () => { await this.writes.write(ops) })
    this.waiting.push(w)
    this.locked(async () => {
      if (w.started) return // it ran at a fold's yield point
      this.unwait(w)
      await w.run()
    }, 'write').catch((err: unknown) => {
      // refused before it ran (the engine closed)
      if (w.started) return
      this.unwait(w)
      w.cancel(err)
    })
    // a stability record or an automatic compaction may be due once it lands (lib/compaction.ts)
    w.done.then(() => { if (!this.closing) this.compactor.poke(() => { this.schedule() }) }, () => {})
    return w.done
  }

  /** Takes a write that starts in its turn out of `waiting` (every task before it has run: it is first). */
  private unwait (w: WaitingWrite): void {
    if (this.waiting[0] === w) this.waiting.shift()
    else {
      const i = this.waiting.indexOf(w)
      if (i !== -1) this.waiting.splice(i, 1)
    }
  }

  /**
   * A fold's yield point (the fold holds the queue, outside its commits' writes): runs the own
   * writes at the head of `waiting`, in order, up to the first marker, up to the first write to a
   * key of `staged` (a commit the fold is staging), and only those queued by now, so a stream of
   * writes cannot hold the fold back. Only while the own log is folded to its length: a write
   * whose log is ahead of the view (a crash between append and commit) folds first, which it does
   * in its own turn. Fold.foldOnce says why a write may run there.
   */
  private async letWritesIn (staged?: ReadonlyMap<string, unknown>): Promise<void> {
    for (let n = this.waiting.length; n > 0; n--) {
      const w = this.waiting[0]
      if (!(w instanceof WaitingWrite) || this.closing || (this.checkpoints.get(this.own.id) ?? 0) !== this.own.core.length) return
      // a write that must make a new key epoch first appends and folds its grants: in its own turn
      if (!this.sealReady()) return
      if (staged !== undefined && w.keys.some((k) => staged.has(Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('hex')))) return
      this.waiting.shift()
      await w.run()
    }
  }

  /**
   * An encrypted database's writer grants every epoch key it holds to every live member and reader
   * that has none recorded (lib/epochs.ts), after a fold.
   */
  private async keysDue (): Promise<void> {
    try {
      // every peer of an encrypted database states its public key for grants, member or not yet
      const box = this.privacy.principalDue(this.own)
      if (box !== null) {
        await this.writes.appendPrincipal(box)
        await this.folder.run()
      }
      const handing = !this.writes.writable()
      if (handing && !this.writes.removedWriter()) return
      const due = this.privacy.epochs.due(this.folder.members, handing)
      if (due.length > 0) await this.appendGrants(due)
    } catch (err) {
      // a clock whose log runs past the lead bound (or a log refusing appends) appends nothing
      // now: the grants stay due, for the next fold (or another member) to write; the fold stands
      const code = (err as { code?: string }).code
      if (code !== 'MESHBEE_CLOCK_AHEAD' && code !== 'MESHBEE_STORAGE') throw err
      this.log.debug({ err }, 'key grants not appended now')
    }
  }

  private async appendGrants (grants: DueGrant[], made?: { epoch: Buffer, vector: Array<[Buffer, number]> }): Promise<void> {
    await this.writes.appendGrants(grants, made)
    await this.folder.run()
  }

  /**
   * Before an own data write to an encrypted database: the epoch to seal it under, a clean one
   * (lib/epochs.ts); when none is held, a new one, granted first to every live member and reader.
   */
  private async sealing (): Promise<void> {
    if (this.privacy.mode !== 'encrypted' || !this.writes.writable()) return
    const { epochs, keyring } = this.privacy
    let epoch = epochs.writing(this.folder.members)
    if (epoch === null) {
      const made = epochs.rotate(this.folder.members)
      keyring.current = made.epoch
      this.log.info({ epoch: made.epoch.toString('hex'), recipients: made.grants.length }, 'a new key epoch: the last one was given to a member no longer live')
      await this.appendGrants(made.grants, made)
      epoch = epochs.writing(this.folder.members) ?? made.epoch
    }
    keyring.current = epoch
  }

  /** Whether an own write can seal under a clean epoch now, without granting one first. */
  private sealReady (): boolean {
    return this.privacy.mode !== 'encrypted' || this.privacy.epochs.writing(this.folder.members) !== null
  }

  /** Appends a membership entry to the own log and folds it. */
  changeMembership (type: typeof ADD_WRITER | typeof REMOVE_WRITER | typeof ADD_READER, target: Uint8Array): Promise<void> {
    return this.locked(async () => { await this.writes.changeMembership(type, target) })
  }

  /**
   * Compacts (lib/compaction.ts): folds, appends this peer's stability record, drops the stable
   * tombstones, clears log blocks below the stable horizons (not with history 'full').
   */
  compact (progress?: (p: CompactProgress) => void): Promise<CompactResult> {
    return this.locked(async () => {
      if (this.privacy.mode === 'blind') throw blind()
      if (this.privacy.mode !== null) await this.folder.run()
      await this.stability.refresh()
      return await this.compactor.compact(progress)
    })
  }

  /** Bytes on disk: the logs (null for a Corestore given by the app) and the view. */
  get disk (): { logs: number | null, view: number } {
    return this.compactor.disk
  }

  writerInfo (): WriterInfo[] {
    return this.inspection.writerInfo()
  }

  kindOf (key: Uint8Array): KeyType | undefined {
    return this.inspection.kindOf(key)
  }

  async versions (key: Uint8Array): Promise<KeyEntryVersion[]> {
    return await this.inspection.versions(key)
  }

  diff (writer: Uint8Array, from: number, to: number | undefined, since: Stamp | undefined): AsyncGenerator<WriterChange> {
    return this.inspection.writerChanges(writer, from, to, since)
  }

  async materialize (cuts: Map<string, number>): Promise<Array<[Buffer, Buffer]>> {
    return await this.inspection.materialize(cuts)
  }
}

/**
 * An own write waiting for the engine's queue. It runs once: in its turn, or earlier at a fold's
 * yield point; `done` settles with its outcome.
 */
class WaitingWrite {
  readonly done: Promise<void>
  /** Whether it ran (or was refused). */
  started = false
  private resolve!: () => void
  private reject!: (err: unknown) => void

  /** `keys`: the user keys it writes. */
  constructor (readonly keys: readonly Uint8Array[], private readonly fn: () => Promise<void>) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
  }

  /** Runs the write, the first time only; never rejects (its outcome goes to `done`). */
  async run (): Promise<void> {
    if (this.started) return
    this.started = true
    try {
      await this.fn()
      this.resolve()
    } catch (err) {
      this.reject(err)
    }
  }

  /** The write will not run (the engine refused it). */
  cancel (err: unknown): void {
    if (this.started) return
    this.started = true
    this.reject(err)
  }
}
