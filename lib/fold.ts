/**
 * The fold: membership first (one deterministic replay of every reached log's membership
 * entries), then data (each member's changed keys between its checkpoint and how far it can be
 * read, merged into the view in atomic commits). A log that stops being a readable Hyperbee is
 * capped at its first malformed block, by a rule that depends only on its bytes (invariant 6).
 */
import type { Logger } from 'pino'
import type { HLC, Stamp } from '../crdt/hlc.js'
import type { CatchUp } from './catchup.js'
import type { ViewCommit } from './commit.js'
import { keyChange, type KeyChange } from './commit.js'
import { CUTS_KEY, FOLD_RANGE, FIELD, FIELD_NS, MEMBER_NS, dataKey, partBeeKey, MEMBERSHIP_RANGE, MEMBER, type DataEntry, type EntryClock, decodeCuts, decodeData, decodeMembership, fieldState, memberState, parseDataKey, slotState } from './entry.js'
import { countsTo, resolveMembers, type Member } from './membership.js'
import type { Stats } from './types.js'
import { partKey, type ViewStore } from './view.js'
import { prefixEnd } from './collate.js'
import type { ChangedKey, WriterLog } from './writer-log.js'
import { isNoReadKey } from './crypt.js'

/** A fold commits once this many keys are staged, at the end of a writer's diff (see `foldOnce`). */
export const FOLD_CHUNK = 1024
/** A commit of more keys than this yields after each this many keys staged (see `foldOnce`). */
const STAGE_SLICE = 256
/** How long a re-merge waits for a tree block this peer lacks, once the view dropped tombstones (ms). */
const REMERGE_TIMEOUT = 5_000
/** The view digest's modulus (lib/digest.ts). */
const DIGEST_MOD = 1n << 256n

/**
 * A fold's yield point (`Fold.run`): the engine runs the own writes waiting for its queue there.
 * `staged`, when given, holds the keys (hex) of a commit the fold is staging: a write to any of
 * them waits (the fold read their rows before it, and would write over its commit).
 */
export type Pause = (staged?: ReadonlyMap<string, unknown>) => Promise<void>

/** What the fold needs from the engine, given at construction. */
export interface FoldHost {
  readonly writers: ReadonlyMap<string, WriterLog>
  readonly catchUps: ReadonlyMap<string, CatchUp>
  readonly checkpoints: Map<string, number>
  readonly view: ViewStore
  readonly commit: ViewCommit
  readonly hlc: HLC
  readonly stats: Stats
  readonly log: Logger
  readonly wallClock: () => number
  /** The database key: membership is followed from the creator's log. */
  key: () => Buffer
  /** Opens the log of a writer that became a member. */
  openWriter: (key: Buffer) => Promise<WriterLog>
  /** The members found by a membership read (an encrypted database reads its grants then). */
  membersRead?: (members: ReadonlyMap<string, Member>) => void
  closing: () => boolean
  /** Membership and view events: 'writer-add' (key), 'writer-remove' (key, cut), 'update'. */
  emit: (event: string, ...args: unknown[]) => void
  /**
   * Told, before a commit lands, of each log step it completes: the writer, the length read to,
   * the length just past the step's last data entry (0: it held none), and the writer's
   * stability record there if the step changed it (lib/stability.ts).
   */
  stepped?: (w: WriterLog, to: number, dataEnd: number, cuts: CutsRecord | undefined) => void
  /** The commit the steps told of landed (true), or failed. */
  landed?: (ok: boolean) => void
  /**
   * Whether a writer's entries past its checkpoint are all stamped after every tombstone the view
   * dropped (`Stability.trusted`); the keys a step of one that is not are merged from the logs.
   */
  trusted?: (id: string) => boolean
  /** Whether the view dropped tombstones: its slots then no longer stand for every entry. */
  dropped?: () => boolean
  /** Reads the stability records of logs opened since (before the steps ask `trusted`). */
  records?: () => Promise<void>
}

/**
 * A writer's stability record: where it lies in its log, its writer's clock then (null: a bad
 * record, which counts as none), and how far its writer had folded each log (by hex key).
 */
export interface CutsRecord { readonly seq: number, readonly at: Stamp | null, readonly cuts: ReadonlyMap<string, number> }

/**
 * What became of a read of a log between two lengths: it was read; the log is malformed from a
 * block on; a sparse catch-up missed a block it needed; or it failed otherwise (retried later).
 */
export type ReadOutcome =
  | { kind: 'read' }
  | { kind: 'locked' }
  | { kind: 'malformed', at: number }
  | { kind: 'missed' }
  | { kind: 'failed', err: unknown }

/**
 * Runs a read of `w` between two lengths. If the log is not a readable Hyperbee there, finds its
 * first malformed block: from then on the log counts only up to that block. That rule depends only
 * on the log's bytes, so every peer caps the log at the same place. A read that fails because the
 * database closes rethrows.
 */
export async function readLog (w: WriterLog, from: number, to: number, read: () => Promise<void>, closing: () => boolean): Promise<ReadOutcome> {
  try {
    await read()
    return { kind: 'read' }
  } catch (err) {
    if (closing()) throw err
    if (isNoReadKey(err)) return { kind: 'locked' }
    let bad: number | null
    try {
      bad = await w.firstMalformed(Math.min(from, w.membershipLength), to)
    } catch (e) {
      if (isNoReadKey(e)) return { kind: 'locked' }
      throw e
    }
    if (bad !== null) return { kind: 'malformed', at: bad }
    if (w.fetchedEnd > w.contiguous) return { kind: 'missed' }
    return { kind: 'failed', err }
  }
}

export class Fold {
  /** The members found by the last membership replay, by writer key (hex). */
  members = new Map<string, Member>()
  /** Set when a read capped a log or gave up a sparse fetch: the fold takes another pass. */
  private again = false

  constructor (private readonly h: FoldHost) {}

  /**
   * Folds everything available locally now; true if the view changed. `pause`, if given, is
   * awaited at the fold's yield points: between its commits, between writers' diffs, every few
   * dozen blocks of a long read, and every STAGE_SLICE keys while a large commit is staged (for
   * writes to other keys) — never while a commit is written. The engine runs the own writes
   * waiting for its queue there (see `foldOnce` for why that is safe), so an own write waits for
   * at most one slice of a long fold and the write of one commit, not for all of it.
   */
  async run (pause?: Pause): Promise<boolean> {
    let changed = false
    for (let pass = 0; pass < 4; pass++) {
      this.again = false
      if (await this.foldOnce(pause)) changed = true
      if (!this.again) break
    }
    // Once a fold has read what a sparse fetch brought (or could not use it: a removal cut below
    // it), the rest of the log downloads again: every peer seeds every member's whole log.
    for (const c of this.h.catchUps.values()) c.resumeDownload()
    return changed
  }

  /** How far the fold reads `w`'s data: up to its member cut, at a length it can read. */
  private async target (w: WriterLog): Promise<number> {
    const m = this.members.get(w.id)
    if (m === undefined) return 0
    return await w.readableEnd(m.cut, this.h.checkpoints.get(w.id) ?? 0)
  }

  /** Applies a read's outcome: false if the caller must leave the log for this pass. */
  private settle (w: WriterLog, from: number, to: number, outcome: ReadOutcome): boolean {
    switch (outcome.kind) {
      case 'read': return true
      case 'locked':
        this.h.stats.lockedReads++
        this.h.log.debug({ writer: w.id, from, to }, 'a block is sealed under an epoch this peer does not hold; the log waits for its key')
        return false
      case 'malformed':
        w.malformedAt = outcome.at
        this.again = true
        this.h.stats.badEntries++
        this.h.log.warn({ writer: w.id, block: outcome.at }, 'malformed block in a writer log: the log counts up to it')
        return false
      case 'missed':
        // a sparse fetch missed a block the read needed: read the log as it downloads instead
        this.h.log.debug({ writer: w.id, from, to }, 'a sparse catch-up missed a block; folding as the log downloads')
        this.h.catchUps.get(w.id)?.missed(to)
        this.again = true // another pass, with the contiguous target
        return false
      case 'failed':
        this.h.log.error({ writer: w.id, from, to, err: outcome.err }, 'cannot read a writer log; it is skipped in this fold')
        return false
    }
  }

  private async refreshMembership (pause?: Pause): Promise<void> {
    // Open a log only once an add of it counts: a stranger's or an ex-member's add entries never
    // make this peer fetch anything. Records of a log that is not a member never count, so the
    // members found are the same whichever extra logs a peer happens to have open.
    let members: Map<string, Member>
    while (true) {
      for (const w of [...this.h.writers.values()]) await this.readMembership(w, pause)
      members = resolveMembers(this.h.key(), [...this.h.writers.values()].flatMap((w) => [...w.records.values()]))
      const missing = [...members.keys()].filter((id) => !this.h.writers.has(id))
      if (missing.length === 0) break
      for (const id of missing) await this.h.openWriter(Buffer.from(id, 'hex'))
    }
    const before = this.members
    this.members = members
    this.h.membersRead?.(members)
    for (const [id, m] of this.members) {
      const was = before.get(id)
      if (was === undefined) this.h.emit('writer-add', Buffer.from(id, 'hex'))
      if (m.removed && (was === undefined || !was.removed)) this.h.emit('writer-remove', Buffer.from(id, 'hex'), m.cut)
    }
  }

  /**
   * Reads the membership records of `w` on to what it holds, in two steps.
   *
   * 1. Through the Hyperbee, up to the length the data fold could stop at (`readableEnd`: a
   *    signed length, a removal's cut, a malformed block), diffing from `membershipTree`, the
   *    last length read that way. The floor includes the checkpoint, a length the data fold
   *    already read (so its tree is held, even past the contiguous length after a sparse
   *    catch-up): after a restart the membership length is 0 and the only signed length known may
   *    lie beyond what is held.
   * 2. Block by block on from there to the contiguous length (up to a malformed block), even
   *    inside a batch: `membershipLength`. A membership entry is always appended alone, as a
   *    batch of one block (`OwnWrites.changeMembership`), so the records the blocks below a
   *    length write are those of the last batch end at or below it: whole batches only, read
   *    from the bytes, with no need to know where the batches end. Without this step a peer that
   *    holds part of a large append knows no length to stop at below it (only the length it was
   *    signed at, which it does not hold), and never reads a membership entry appended before it,
   *    while a peer that heard the shorter signed length did: linked peers holding the same
   *    blocks disagreed on the members until the rest arrived, if it ever did. With it the
   *    members are a function of the blocks held. Where a batch ends cannot be read from the
   *    bytes: its inner nodes may carry index nodes of subtrees (`innerBatchNode` is false for
   *    them), and a tree read at such a length reads a subtree as the whole tree, so a diff from
   *    there loses keys (test/membership-partial.test.ts).
   *
   * A step through the tree from `membershipTree` applied over records read further block by
   * block gives the records at its end: a key written in between is in the diff with its entry
   * there. Records read past a malformed block found later (the block decoded but its tree did
   * not) are read again from the start.
   */
  private async readMembership (w: WriterLog, pause?: Pause): Promise<void> {
    if (w.encrypted) {
      // an encrypted log's membership lives in its clear blocks, read in order whatever key this
      // peer holds (its tree's nodes lie in sealed blocks): step 2 alone, over the clear blocks
      const held = w.local ? w.core.length : Math.min(w.contiguous, w.malformedAt)
      if (held > w.membershipLength) {
        const from = w.membershipLength
        const outcome = await readLog(w, from, held, async () => {
          this.applyMembership(w, await w.clearKeys(from, held, MEMBERSHIP_RANGE, pause))
        }, this.h.closing)
        if (this.settle(w, from, held, outcome)) w.membershipLength = w.membershipTree = held
      }
      return
    }
    const good = await w.readableEnd(Infinity, Math.max(w.membershipTree, this.h.checkpoints.get(w.id) ?? 0))
    if (good < w.membershipTree || w.membershipLength > w.malformedAt) {
      w.records.clear()
      w.membershipLength = w.membershipTree = 0
    }
    if (good > w.membershipTree) {
      const from = w.membershipTree
      if (good > w.membershipLength) {
        // (from below where compaction cleared the log, e.g. a checkpoint a late removal moved
        // back: no tree is left there, the tree at `good` is read whole; membership keys are
        // never deleted, so it names every record)
        const base = w.diffBase(from)
        const outcome = await readLog(w, from, good, async () => {
          this.applyMembership(w, await w.changedKeys(base, good, MEMBERSHIP_RANGE, pause))
        }, this.h.closing)
        if (!this.settle(w, from, good, outcome)) return
        w.membershipLength = good
      }
      w.membershipTree = good
    }
    const held = w.local ? w.membershipLength : Math.min(w.contiguous, w.malformedAt)
    if (held > w.membershipLength) {
      const from = w.membershipLength
      const outcome = await readLog(w, from, held, async () => {
        this.applyMembership(w, await w.scanBlocks(from, held, MEMBERSHIP_RANGE, pause))
      }, this.h.closing)
      if (this.settle(w, from, held, outcome)) w.membershipLength = held
    }
  }

  /** Applies membership bee keys read from `w` (each with its latest entry) to its records. */
  private applyMembership (w: WriterLog, changes: ChangedKey[]): void {
    for (const c of changes) {
      const id = c.key.toString('hex')
      if (c.value === null) {
        w.records.delete(id)
        continue
      }
      let entry: ReturnType<typeof decodeMembership>
      try {
        entry = decodeMembership(c.key, c.value)
      } catch (err) {
        w.records.delete(id)
        this.skip(w, c.seq, err)
        continue
      }
      // observed like a data entry: an entry this peer writes after it is stamped after it, so a
      // member added by a peer whose clock runs ahead does not stamp its own membership entries
      // before its own add (where the replay would not count them). Outside the try, and first: a
      // wall clock reading that fails its check fails the read (it is read again by a later
      // fold), it does not make a valid entry count as bad and drop it.
      this.observe(w, entry.stamp, entry.clock)
      w.records.set(id, { author: w.key, seq: c.seq, entry })
    }
  }

  /**
   * One fold: every writer's diff from its checkpoint to its target, merged into the view. A small
   * fold commits once. A large one (a catch-up over many writers) commits after each writer whose
   * diff brings the staged keys to FOLD_CHUNK, so memory stays bounded by the chunk and the largest
   * single diff. Every commit is atomic and carries the checkpoints of exactly the writers whose
   * diffs it completes; a writer's diff is never split, and a fold in which a cut moves back (a
   * removal) commits once, so each state a reader can see is the view of a set of cuts that every
   * committed membership entry agrees with (invariants 1 and 4 hold commit by commit).
   *
   * `pause` (own writes may run in it) is awaited where the fold holds nothing read from the view:
   * between commits it holds entries read from remote logs only, and a commit stages each key
   * from the view as it is then, own writes included. So an own write that runs at a yield point
   * commits the view of some set of cuts (its own log one longer), and the next commit of the fold
   * lays the remote entries over it. While a commit is being staged, the keys staged so far were
   * read from the view: a write to one of them waits for the commit, one to other keys may run
   * (its rows are not the commit's, and the digest is a sum: the commit adds what the write added
   * to it). Own writes run there only while the own log is folded to its length (`Engine`), so no
   * step of the own log is pending, and they change no membership. A step whose writer another
   * fold moved meanwhile (it cannot happen with own writes alone) is left to the next pass.
   */
  private async foldOnce (pause?: Pause): Promise<boolean> {
    const { view, commit, checkpoints, stats } = this.h
    stats.folds++
    await this.refreshMembership(pause)
    await this.h.records?.()
    for (const [id, c] of this.h.catchUps) {
      const m = this.members.get(id)
      c.maybeFetch(checkpoints.get(id) ?? 0, countsTo(m), m !== undefined && m.removed && m.reader !== true)
    }
    const changed = new Map<string, KeyChange>()
    let entries = 0
    /** The writers whose diffs are staged: the checkpoint each was read from, and its target. */
    const done = new Map<string, { from: number, to: number, dataEnd: number, cuts: CutsRecord | undefined }>()
    let viewChanged = false
    /** Where the fold yields: only where a commit could be made (set once the steps are known). */
    let yieldTo: Pause | undefined
    const flush = async (): Promise<void> => {
      const stale = [...done].some(([id, { from }]) => (checkpoints.get(id) ?? 0) !== from)
      if (stale) {
        // read from a checkpoint that has moved since: read again in another pass
        this.again = true
      } else if (!await this.fromLogs(changed, done)) {
        // a tree this peer cannot read, where the view's slots no longer stand for its entries:
        // nothing of these steps is committed, a later pass (once the blocks arrive) reads again
        this.again = true
      } else {
        const staged = commit.begin()
        const base = staged.digest
        let rendered = false
        let n = 0
        for (const ch of changed.values()) {
          if (await commit.stage(staged, ch)) rendered = true
          stats.keysMerged++
          if (yieldTo !== undefined && ++n % STAGE_SLICE === 0 && n < changed.size) await yieldTo(changed)
        }
        // own writes committed meanwhile (to other keys): their share of the digest is added
        if (commit.digest !== base) staged.digest = ((staged.digest + commit.digest - base) % DIGEST_MOD + DIGEST_MOD) % DIGEST_MOD
        for (const [id, { to }] of done) staged.ops.push(view.putCheckpoint(Buffer.from(id, 'hex'), to))
        for (const [id, { to, dataEnd, cuts }] of done) this.h.stepped?.(this.h.writers.get(id) as WriterLog, to, dataEnd, cuts)
        try {
          await commit.commit(staged, this.h.hlc)
        } catch (err) {
          this.h.landed?.(false)
          throw err
        }
        this.h.landed?.(true)
        for (const [id, { to }] of done) checkpoints.set(id, to)
        // each commit is announced as it lands: a long fold's first chunks are readable at once
        if (rendered) {
          viewChanged = true
          this.h.emit('update')
        }
      }
      changed.clear()
      entries = 0
      done.clear()
    }
    const steps: Array<{ w: WriterLog, from: number, to: number }> = []
    for (const id of [...this.h.writers.keys()].sort()) {
      const w = this.h.writers.get(id) as WriterLog
      const from = checkpoints.get(id) ?? 0
      const to = await this.target(w)
      if (to !== from) steps.push({ w, from, to })
    }
    // A cut moving back (a removal) must land in the same commit as the remover's checkpoint, or
    // a reader could see the removal counted and the removed writer's later entries still in.
    const chunked = steps.every(({ from, to }) => to > from)
    // Yield points only where a commit could be made: a fold in which a cut moves back commits once.
    yieldTo = chunked ? pause : undefined
    for (const { w, from, to } of steps) {
      if (yieldTo !== undefined) await yieldTo()
      if ((checkpoints.get(w.id) ?? 0) !== from) {
        this.again = true
        continue
      }
      const found: Array<{ beeKey: Buffer, seq: number, entry: Uint8Array | null }> = []
      let cuts: CutsRecord | undefined
      // A checkpoint below where compaction cleared the log (a view that lost its newest commits)
      // has no tree left to diff from: the step reads the whole tree at its end instead, every
      // key with its entry there, which replaces whatever the view holds.
      const base = to > from ? w.diffBase(from) : from
      const outcome = await readLog(w, from, to, async () => {
        for (const c of await w.changedKeys(base, to, FOLD_RANGE, yieldTo)) {
          if (c.key.equals(CUTS_KEY)) cuts = this.cutsRecord(w, c.seq, c.value)
          else found.push({ beeKey: c.key, seq: c.seq, entry: c.value === null ? null : this.validate(w, c.seq, c.key, c.value) })
        }
      }, this.h.closing)
      if (!this.settle(w, from, to, outcome)) continue
      // a cut moving back, or entries that may be older than a dropped tombstone: the keys are
      // merged from every member's log
      const full = to < from || this.h.trusted?.(w.id) === false
      for (const { beeKey, seq, entry } of found) {
        let dk
        try {
          dk = parseDataKey(beeKey)
        } catch (err) {
          // a key no entry can be valid under: nothing of it ever counts (a removed entry too)
          if (entry !== null) this.skip(w, seq, err)
          continue
        }
        const kid = dk.key.toString('hex')
        let c = changed.get(kid)
        if (c === undefined) changed.set(kid, c = keyChange(Buffer.from(dk.key)))
        if (full) c.full = true
        if (dk.part === null) c.slots.set(w.id, entry)
        else {
          const part = partKey(dk.key, dk.part.kind, dk.part.name)
          const pid = part.toString('hex')
          let pc = c.parts.get(pid)
          if (pc === undefined) c.parts.set(pid, pc = { kind: dk.part.kind, name: Buffer.from(dk.part.name), slots: new Map() })
          pc.slots.set(w.id, entry)
        }
        entries++
        stats.diffEntries++
      }
      // (each changed key's entry is its last in the step: the step's last data entry is among them)
      done.set(w.id, { from, to, dataEnd: found.reduce((n, f) => Math.max(n, f.seq + 1), 0), cuts })
      if (chunked && entries >= FOLD_CHUNK) await flush()
    }
    if (changed.size > 0 || done.size > 0) await flush()
    return viewChanged
  }

  /**
   * A key whose cut moved back (a removal), or that a writer not trusted past a dropped tombstone
   * wrote (`FoldHost.trusted`), is re-merged from every member's entries for it at its
   * checkpoint, read from the logs, not from the view's slots: compaction may have dropped the
   * key's tombstone (lib/stability.ts), and the entry the removed writer falls back to, or the
   * late writer's, can be older than that tombstone, which must still beat it. The entries a step
   * of this fold read are laid over. The trees at the checkpoints are held (compaction keeps them).
   */
  private async fromLogs (changed: Map<string, KeyChange>, steps: ReadonlyMap<string, { to: number }>): Promise<boolean> {
    const full = [...changed.values()].filter((c) => c.full)
    if (full.length === 0) return true
    // once tombstones were dropped, the view's slots no longer stand in for a block not held here:
    // it is fetched from a peer that kept it (a full-history one)
    const read = this.h.dropped?.() === true ? { wait: true, timeout: REMERGE_TIMEOUT } : { wait: false }
    for (const [id, m] of this.members) {
      const w = this.h.writers.get(id)
      const len = steps.get(id)?.to ?? this.h.checkpoints.get(id) ?? 0
      if (w === undefined || m.reader === true || len <= 1) continue
      const snap = w.bee.checkout(len)
      try {
        for (const c of full) {
          if (!c.slots.has(id)) {
            const node = await snap.get(dataKey(c.key), read)
            c.slots.set(id, node === null ? null : this.validate(w, node.seq, node.key, node.value))
          }
          for (const kind of [FIELD_NS, MEMBER_NS] as const) {
            const gte = partBeeKey(kind, c.key, Buffer.alloc(0))
            for await (const node of snap.createReadStream({ gte, lt: prefixEnd(gte) }, read)) {
              const dk = parseDataKey(node.key)
              if (dk.part === null || !dk.key.equals(c.key)) continue
              const pid = partKey(c.key, dk.part.kind, dk.part.name).toString('hex')
              let pc = c.parts.get(pid)
              if (pc === undefined) c.parts.set(pid, pc = { kind: dk.part.kind, name: Buffer.from(dk.part.name), slots: new Map() })
              if (!pc.slots.has(id)) pc.slots.set(id, this.validate(w, node.seq, node.key, node.value))
            }
          }
        }
      } catch (err) {
        // a block this peer cannot read: the view's slots stand for that writer's entries, unless
        // the view dropped tombstones (then the step waits for the blocks)
        this.h.log.debug({ writer: id, err }, 'a re-merge could not read a writer\'s log')
        if (this.h.dropped?.() === true) return false
      } finally {
        await snap.close()
      }
    }
    return true
  }

  /** A stability record read from `w` (an empty one if it is bad: counted, and it records nothing). */
  private cutsRecord (w: WriterLog, seq: number, value: Buffer | null): CutsRecord {
    const cuts = new Map<string, number>()
    if (value === null) return { seq, at: null, cuts }
    try {
      const e = decodeCuts(CUTS_KEY, value)
      for (const [writer, len] of e.vector) cuts.set(Buffer.from(writer).toString('hex'), len)
      return { seq, at: e.at, cuts }
    } catch (err) {
      this.skip(w, seq, err)
      return { seq, at: null, cuts: new Map() }
    }
  }

  /** The entry if it is valid, else null (and counted). Observes remote stamps into the clock. */
  private validate (w: WriterLog, seq: number, beeKey: Uint8Array, value: Uint8Array): Uint8Array | null {
    let e: DataEntry
    try {
      e = decodeData(beeKey, value)
      if (e.type === FIELD) fieldState(e, w.key)
      else if (e.type === MEMBER) memberState(e, w.key)
      else slotState(e, w.key)
    } catch (err) {
      this.skip(w, seq, err)
      return null
    }
    this.observe(w, e.stamp, e.clock)
    return value
  }

  private skip (w: WriterLog, seq: number, err: unknown): void {
    this.h.stats.badEntries++
    this.h.log.warn({ writer: w.id, seq, err: (err as Error).message }, 'skipped a bad entry')
  }

  /**
   * Observes a remote entry's stamp into the clock (followed up to maxDrift; the newest becomes
   * the clock's `seen`, its lead bound). The writer's skew is its wall clock's reading (version 3
   * carries it; older entries only their stamp) against the local wall clock: a writer whose
   * stamps follow another's clock ahead of its own does not look skewed, the one ahead does.
   */
  private observe (w: WriterLog, stamp: Stamp, clock: EntryClock | undefined): void {
    if (w.local) return
    const skew = (clock?.reading ?? stamp.wall) - this.h.wallClock()
    if (skew > w.maxSkew) w.maxSkew = skew
    // key bookkeeping carries the zero stamp (OwnWrites.bookkeeping): nothing for the clock to follow
    if (stamp.wall === 0 && stamp.counter === 0) return
    const { clamped, drift } = this.h.hlc.observe(stamp)
    if (clamped) {
      this.h.stats.clampedStamps++
      // the clamp is decided by the stamp (drift); the writer's own clock is `skew`
      this.h.log.warn({ writer: w.id, drift, skew }, 'remote stamp runs ahead beyond maxDrift')
    }
  }
}
