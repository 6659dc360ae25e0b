/**
 * One writer's log as the fold reads it: its Hypercore and Hyperbee, the lengths it was signed at,
 * where it stops being a well-formed Hyperbee, how far it can be read with local blocks, and the
 * keys that changed between two lengths.
 */
import type Hyperbee from 'hyperbee'
import type Hypercore from 'hypercore'
import { compareStamps, type Stamp } from '../crdt/hlc.js'
import { decodeNode, innerBatchNode, treeLevels, treeSizeEstimate, wellFormed } from './blocks.js'
import { clearPayload, isNoReadKey } from './crypt.js'
import { MEMBERSHIP_RANGE, decodeEntry } from './entry.js'
import { buf } from './keys.js'
import { historyCleared } from './errors.js'
import type { MembershipRecord } from './membership.js'

/** A bee key whose latest entry changed, with that entry (value null: the key has none now). */
export interface ChangedKey { key: Buffer, seq: number, value: Buffer | null }

/** A range of bee keys. */
export interface BeeRange { gte: Buffer, lt: Buffer }

/** Steps forward of at most this many blocks are read block by block instead of diffed. */
const SCAN_LIMIT = 32
/** How many blocks a scan reads at once. */
const SCAN_READS = 64
/** A long diff awaits its `pause` after every this many changed keys. */
const DIFF_PAUSE = 256
/** How long a read that may fetch from peers waits for one block. */
export const FETCH_TIMEOUT = 15_000
/** How long a read of history compaction cleared here waits for a peer that kept it. */
export const HISTORY_TIMEOUT = 5_000


/** The index of the first element of an ascending list that is greater than `x` (the length if none is). */
function firstAbove (sorted: readonly number[], x: number): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (sorted[mid] > x) hi = mid
    else lo = mid + 1
  }
  return lo
}

/** What `readBlocks` needs of a Hypercore's storage (hypercore 11's session state), and its decryption. */
interface BlockReader {
  state?: { storage?: { read?: () => { getBlock: (i: number) => Promise<Uint8Array | null>, tryFlush: () => void } } }
  encryption?: { padding: (core: unknown, i: number) => number, decrypt: (i: number, block: Uint8Array, core: unknown) => Promise<void> } | null
  core?: unknown
}

/** A length kept as 8 bytes in `core`'s user data under `name` (0: none, or not 8 bytes). */
export async function storedLength (core: Hypercore, name: string): Promise<number> {
  const raw = await core.getUserData(name) as Buffer | null
  return raw === null || raw.byteLength !== 8 ? 0 : Number(raw.readBigUInt64BE(0))
}

/**
 * The held blocks [start, end) of a core (null for one not held), read in one storage batch: one
 * native RocksDB call for them all, where `core.get` makes one per block (a synchronous call on the
 * main thread each, ~20 µs, most of a scan's cost). Local reads only: the blocks were verified
 * when they were stored. Falls back to `core.get` if the storage is not what it expects.
 */
async function readBlocks (core: Hypercore, start: number, end: number, raw = false): Promise<Array<Uint8Array | null>> {
  const reader = core as unknown as BlockReader
  const storage = reader.state?.storage
  if (typeof storage?.read === 'function') {
    const rx = storage.read()
    const reads: Array<Promise<Uint8Array | null>> = []
    for (let i = start; i < end; i++) reads.push(rx.getBlock(i))
    rx.tryFlush()
    const blocks = await Promise.all(reads)
    const enc = reader.encryption
    if (raw || enc === undefined || enc === null) return blocks
    // stored blocks of an encrypted log: decrypted as core.get would (a copy: storage may share them)
    for (let j = 0; j < blocks.length; j++) {
      const b = blocks[j]
      if (b === null) continue
      const copy = Buffer.from(b)
      await enc.decrypt(start + j, copy, reader.core)
      blocks[j] = copy.subarray(enc.padding(reader.core, start + j))
    }
    return blocks
  }
  if (raw) {
    const out: Array<Uint8Array | null> = []
    for (let i = start; i < end; i++) out.push(await core.get(i, { wait: false, raw: true } as never) as Uint8Array | null)
    return out
  }
  const reads: Array<Promise<Uint8Array | null>> = []
  for (let i = start; i < end; i++) reads.push(core.get(i, { wait: false }))
  return await Promise.all(reads)
}

export class WriterLog {
  readonly key: Buffer
  /** The writer key in hex: the writer's id in every map. */
  readonly id: string
  /** Membership records of this log, by bee key (hex), read up to `membershipLength`. */
  readonly records = new Map<string, MembershipRecord>()
  /**
   * How much of this log its membership records were read from: up to `membershipTree` through
   * the Hyperbee, then block by block up to the contiguous length (see `Fold.readMembership`),
   * so it may end inside a batch.
   */
  membershipLength = 0
  /**
   * The last length at which the membership records were read through the Hyperbee (a length the
   * fold may stop at, where the tree is whole): the next tree read diffs from it. At most
   * `membershipLength`.
   */
  membershipTree = 0
  /** Largest amount (ms) by which this writer's wall clock (its entries' readings; older entries: their stamps) ran ahead of the local one. */
  maxSkew = 0
  /** Index of the first block that is not a well-formed Hyperbee block: the log counts up to it. */
  malformedAt = Infinity
  /**
   * A signed length past the contiguous one whose diff from the checkpoint reads only local
   * blocks, after a sparse fetch (0: none): for a removed member its cut, or past the cut its
   * latest length, which only the membership read reaches. Set by the catch-up, read by
   * `readableEnd`.
   */
  fetchedEnd = 0
  /**
   * Whether this log belongs to an encrypted database: its membership is read from its clear
   * blocks (`clearKeys`), never through its tree, whose nodes lie in sealed blocks too.
   */
  encrypted = false
  /**
   * Below this length, the blocks no B-tree read needs were cleared on this peer (compaction,
   * lib/compaction.ts): a block missing there is gone, not late. Kept in the log's own store.
   */
  clearedTo = 0

  /**
   * Lengths of this log seen as its signed length (`core.length` on open and on every append),
   * ascending. The writer signs at the end of each append, so these never end inside a Hyperbee
   * batch: the fold only stops at them. A peer that hears a log grow faster than it can fold it
   * (a burst) holds one per upgrade heard, so they are looked up by binary search.
   */
  private signed: number[]
  /**
   * Downloaded blocks past `membershipLength` that hold a membership entry, ascending: once one is
   * contiguous a fold can read it (block by block, `Fold.readMembership`) whether or not a signed
   * length completes, so `movable` wakes one (see `downloaded`).
   */
  private membershipBlocks: number[] = []

  /**
   * @param local - whether this is this peer's own log (every length of it is readable)
   * @param checkpoint - the length of this log the view reflects (the engine keeps it)
   * @param runScan - decides, given whether a long step mostly adds new keys, whether to read its
   *   blocks one by one (the engine's test hook; the answer itself otherwise)
   */
  constructor (readonly core: Hypercore, readonly bee: Hyperbee, readonly local: boolean, private readonly checkpoint: () => number,
    private readonly runScan: (mostlyNewKeys: boolean) => boolean = (yes) => yes) {
    this.key = buf(core.key)
    this.id = this.key.toString('hex')
    this.signed = [core.length]
  }

  /**
   * How far this log's blocks are held without a gap, counting from where compaction stopped
   * clearing: the blocks below `clearedTo` that a read still needs were kept, the others are
   * gone for good, so the fold reads on from there as from a contiguous log.
   */
  get contiguous (): number {
    const plain = this.core.contiguousLength
    if (plain >= this.clearedTo) return plain
    const bitfield = (this.core as unknown as { core?: { bitfield?: { firstUnset: (i: number) => number } } }).core?.bitfield
    if (bitfield === undefined) return plain
    const first = bitfield.firstUnset(this.clearedTo)
    return first === -1 || first > this.core.length ? this.core.length : first
  }

  /** Records the log's new signed length (on every append, local or downloaded). */
  appended (): void {
    const n = this.core.length
    const s = this.signed
    if (s.length === 0 || n > s[s.length - 1]) s.push(n)
    else {
      // not above the last one (a log truncated and grown back): in its place, once
      const i = firstAbove(s, n - 1)
      if (s[i] !== n) s.splice(i, 0, n)
    }
  }

  /**
   * Whether the blocks now held let a fold move this log on: folds stop only at signed lengths (or
   * a removal's `cut`), so a block that completes none of them changes nothing. A whole-log
   * download of 500 blocks announced in one upgrade wakes one fold instead of hundreds.
   */
  movable (cut: number): boolean {
    const contiguous = this.contiguous
    if (contiguous >= this.core.length) return true
    const floor = Math.min(this.membershipTree, this.checkpoint())
    const next = this.signed[firstAbove(this.signed, floor)]
    if (next !== undefined && next <= contiguous) return true
    if (cut > floor && cut <= contiguous) return true
    const m = this.membershipBlocks
    while (m.length > 0 && (m[0] as number) < this.membershipLength) m.shift()
    return m.length > 0 && (m[0] as number) < contiguous
  }

  /**
   * Notes a block that was downloaded: true if it holds a membership entry past the membership
   * read (then `movable` is true once it is contiguous). A peer holding part of a large append
   * stops at no signed length below it, so without this a membership entry before it would wait
   * for some other fold. One local read of the block; only for a download `movable` did not wake.
   */
  async downloaded (index: number): Promise<boolean> {
    if (index < this.membershipLength) return false
    const block = await this.core.get(index, { wait: false }).catch(() => null)
    if (block === null) return false
    let key: Uint8Array
    try {
      key = decodeNode(block).key
    } catch {
      return false
    }
    if (!(key instanceof Uint8Array) || Buffer.compare(key, MEMBERSHIP_RANGE.gte) < 0 || Buffer.compare(key, MEMBERSHIP_RANGE.lt) >= 0) return false
    const m = this.membershipBlocks
    const i = firstAbove(m, index - 1)
    if (m[i] !== index) m.splice(i, 0, index)
    return true
  }

  /**
   * Where a diff forward from length `from` starts: `from`, or 0 when compaction cleared the log
   * past it (no tree is left there; the diff reads the tree at its end whole).
   */
  diffBase (from: number): number {
    return from > 1 && from < this.clearedTo ? 0 : from
  }

  /**
   * How far a fold may read this log, up to `limit` (a removal's cut, or Infinity), from `floor`
   * (a length already read): the one rule for both the data fold and the membership read. A cut
   * and a malformed block come from the logs' bytes, the same on every peer, and `batchEnd` keeps
   * a forged cut deterministic too; otherwise the fold stops only at signed lengths, up to what is
   * held locally (the contiguous blocks, or a sparse fetch's length).
   */
  async readableEnd (limit: number, floor: number): Promise<number> {
    const fixed = Math.min(limit, this.malformedAt)
    const contiguous = this.contiguous
    // (or a sparse fetch brought the tree at a removal's cut)
    if (fixed <= contiguous || this.fetchedEnd === fixed) return await this.batchEnd(fixed)
    const held = this.fetchedEnd <= fixed && this.fetchedEnd > contiguous ? this.fetchedEnd : contiguous
    return this.signedAtMost(held, floor)
  }

  /**
   * How far inspection (`diff`, `checkout`) reads this log: its contiguous blocks, and up to its
   * checkpoint after a sparse catch-up (that tree is held); blocks in between that a read needs
   * are fetched from peers, with a time limit.
   */
  heldEnd (): number {
    return Math.max(this.contiguous, this.checkpoint())
  }

  /**
   * The largest signed length up to `len`, or `floor` (a length already read) if none is known. A
   * peer that holds part of an append (part of a batch) waits for the rest.
   */
  signedAtMost (len: number, floor: number): number {
    if (this.local) return Math.min(len, this.core.length)
    const below = this.signed[firstAbove(this.signed, len) - 1]
    const best = below !== undefined && below > floor ? below : floor
    // The list serves two readers with their own floors: the membership read and the data fold
    // (the checkpoint). Drop only lengths neither can still need; pruning by this caller's `best`
    // lost the length the other one was waiting for, and its fold stalled until the next append.
    if (this.signed.length > 64) {
      const done = firstAbove(this.signed, Math.min(this.membershipTree, this.checkpoint()))
      if (done > 0) this.signed.splice(0, done)
    }
    return best
  }

  /**
   * The largest length up to `len` at which the Hyperbee can be read. A Hyperbee batch appends its
   * nodes together and only the last one carries the B-tree index: a peer that has downloaded part
   * of a batch holds a length that ends inside it, where there is no tree to read. Such a log
   * counts up to its last whole batch (so a batch also arrives whole). Depends only on the bytes.
   * A block that is no Hyperbee node at all stops the search: reading there fails, and the fold
   * then caps the log at its first malformed block.
   */
  async batchEnd (len: number): Promise<number> {
    let end = len
    while (end > 1) {
      // (an encrypted log's block this peer cannot decrypt counts as not held)
      const block = await this.core.get(end - 1, { wait: false }).catch((err: unknown) => { if (isNoReadKey(err)) return null; throw err })
      if (block === null || !innerBatchNode(block)) break
      end--
    }
    return end
  }

  /** The first block in [from - 1, to) that is not a well-formed Hyperbee block, or null (also when one is not held). */
  async firstMalformed (from: number, to: number): Promise<number | null> {
    for (let i = Math.max(0, from - 1); i < to; i++) {
      const block = await this.core.get(i, { wait: false })
      if (block === null) return null
      if (!wellFormed(block, i)) return i
    }
    return null
  }

  /**
   * The bee keys in `range` whose latest entry differs between lengths `from` and `to`, each with
   * its entry at `to`. A Hyperbee diff between the two versions, which costs the changed keys
   * however long the history between them. For a short step forward (the live case, a few
   * appends) or a run of mostly new keys, reading the blocks in between is cheaper than walking
   * two trees: a key changed iff a block in between wrote it, and its last such block is its
   * entry at `to`. Local blocks only: a fold never waits on the network. `pause`, if given, is
   * awaited every few dozen blocks or entries read (a long read lets the engine's waiting own writes
   * run meanwhile: it reads only this log's blocks, which they do not touch).
   */
  async changedKeys (from: number, to: number, range: BeeRange, pause?: () => Promise<unknown>): Promise<ChangedKey[]> {
    if (to > from && (to - from <= SCAN_LIMIT || this.runScan(await this.mostlyNewKeys(from, to)))) {
      const scanned = await this.scan(from, to, range, pause)
      if (scanned !== null) return scanned
    }
    const out: ChangedKey[] = []
    const snap = this.bee.checkout(Math.max(1, to))
    try {
      for await (const { left, right } of snap.createDiffStream(from, range, { wait: false })) {
        const node = left ?? right as NonNullable<typeof right>
        out.push({ key: node.key, seq: left?.seq ?? node.seq, value: left === null ? null : left.value })
        if (pause !== undefined && out.length % DIFF_PAUSE === 0) await pause()
      }
    } finally {
      await snap.close()
    }
    return out
  }

  /**
   * The bee keys in `range` that the blocks [from, to) write, each with its last entry there
   * (value null: deleted), read block by block and never through the tree, so `from` and `to`
   * may lie inside a batch. Local blocks only; throws if one is not held or is no Hyperbee node.
   */
  async scanBlocks (from: number, to: number, range: BeeRange, pause?: () => Promise<unknown>): Promise<ChangedKey[]> {
    if (to <= from) return []
    const scanned = await this.scan(from, to, range, pause)
    if (scanned === null) throw new Error(`blocks ${from}..${to} of log ${this.id.slice(0, 8)} are not all held Hyperbee nodes`)
    return scanned
  }

  /**
   * Whether the blocks [from, to), all held, mostly add keys the tree did not have (a log of
   * distinct keys, such as a peer's offline writes seen for the first time). Reading those blocks
   * one by one then costs less than a diff, which walks the tree down to each of them. Judged from
   * the two ends' tree-size estimates, so a log that overwrites (a hot key in a large tree, a
   * catch-up over many overwrites) keeps the diff, whose cost is the keys that changed. A tree at
   * length n holds at most n - 1 keys: an estimate above that is the estimate's error (it runs up
   * to 3× on trees of ascending or scattered keys), and is taken as n - 1. Unclamped, a fresh peer
   * folding a log of new keys took the diff, ~30× slower than the blocks while replication kept
   * the event loop busy (200 entries/s).
   */
  private async mostlyNewKeys (from: number, to: number): Promise<boolean> {
    if (to > this.contiguous) return false
    const size = async (len: number): Promise<number | null> => {
      if (len <= 1) return 0
      const block = await this.core.get(len - 1, { wait: false })
      if (block === null) return null
      try {
        return Math.min(treeSizeEstimate(treeLevels(block)), len - 1)
      } catch {
        return null
      }
    }
    const [before, after] = [await size(from), await size(to)]
    if (before === null || after === null) return false
    const gap = to - from
    return after <= 2 * gap && after - before >= gap / 2
  }

  /** The blocks [from, to) read as Hyperbee nodes, last write per key; null if one is not a node. */
  /**
   * `clear`: read the blocks as stored and only an encrypted log's clear ones (`clearKeys`): a
   * sealed block, or a clear one that is no node, is passed over rather than ending the scan.
   */
  private async scan (from: number, to: number, range: BeeRange, pause?: () => Promise<unknown>, clear = false): Promise<ChangedKey[] | null> {
    const latest = new Map<string, ChangedKey>()
    // read SCAN_READS blocks at a time: one by one, each read waits a turn of an event loop that
    // replication may keep busy
    let blocks: Array<Uint8Array | null> = []
    for (let seq = Math.max(1, from); seq < to; seq++) {
      const i = (seq - Math.max(1, from)) % SCAN_READS
      if (i === 0) {
        if (pause !== undefined && seq > Math.max(1, from)) await pause()
        blocks = await readBlocks(this.core, seq, Math.min(to, seq + SCAN_READS), clear)
      }
      const stored = blocks[i]
      // (an encrypted log read from its start: blocks compaction cleared held no record still current)
      if ((stored === null || stored === undefined) && clear && seq < this.clearedTo) continue
      if (stored === null || stored === undefined) return null
      const block = clear ? clearPayload(stored) : stored
      if (block === null) continue
      let node: { key: Uint8Array, value: Uint8Array | null }
      try {
        node = decodeNode(block)
      } catch {
        if (clear) continue
        return null
      }
      if (!(node.key instanceof Uint8Array)) {
        if (clear) continue
        return null
      }
      const key = buf(node.key)
      if (Buffer.compare(key, range.gte) < 0 || Buffer.compare(key, range.lt) >= 0) continue
      latest.set(key.toString('hex'), { key, seq, value: node.value === null ? null : buf(node.value) })
    }
    return [...latest.values()]
  }

  /**
   * The membership nodes in `range` among the blocks [from, to) of an encrypted log, last write per
   * key: read from the clear blocks as stored, sealed ones skipped (membership is always stored
   * clear: lib/crypt.ts). Needs no key, so a member reads the grants of an epoch before it holds
   * it, and every peer, key or none, reads the same records. Every block must be held.
   */
  async clearKeys (from: number, to: number, range: BeeRange, pause?: () => Promise<unknown>): Promise<ChangedKey[]> {
    const read = await this.scan(from, to, range, pause, true)
    if (read === null) throw new Error(`blocks ${from}..${to} of log ${this.id.slice(0, 8)} are not all held`)
    return read
  }

  /**
   * The first index below `end` whose entry is stamped at or after `since` (stamps grow along a
   * log). Below `clearedTo` the search needs blocks compaction cleared: it reads them from a peer
   * that kept them (`history`), and fails with MESHBEE_HISTORY_CLEARED if none has.
   */
  async firstSince (since: Stamp, end: number): Promise<number> {
    const at = async (i: number): Promise<Stamp | null> => {
      // (Hyperbee's getBySeq ignores per-call options: read the block itself, with a time limit)
      const block = i < this.clearedTo ? await this.history(i) : await this.core.get(i, { timeout: FETCH_TIMEOUT }).catch(() => null)
      try {
        const value = block === null ? null : decodeNode(block).value
        return value === null ? null : decodeEntry(value).stamp
      } catch {
        return null
      }
    }
    const search = async (lo: number, hi: number): Promise<number> => {
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        const st = await at(mid)
        if (st !== null && compareStamps(st, since) >= 0) hi = mid
        else lo = mid + 1
      }
      return lo
    }
    const floor = Math.min(end, Math.max(1, this.clearedTo))
    const found = await search(floor, end)
    // the answer lies below the cleared range's end only if the block before it is new enough too
    if (found > floor || floor <= 1) return found
    return await search(1, floor)
  }

  /**
   * A block below `clearedTo`: held (compaction kept it) or fetched from a peer that kept it,
   * within HISTORY_TIMEOUT. Throws MESHBEE_HISTORY_CLEARED when no peer has it.
   */
  async history (i: number): Promise<Uint8Array> {
    const held = await this.core.get(i, { wait: false }).catch(() => null)
    if (held !== null) return held
    const peers = (this.core as unknown as { peers?: unknown[] }).peers ?? []
    const got = peers.length === 0 ? null : await this.core.get(i, { timeout: HISTORY_TIMEOUT }).catch(() => null)
    if (got === null) throw historyCleared(this.id, i, this.clearedTo)
    return got
  }

  /**
   * Before a read of the tree at length `len`: throws MESHBEE_HISTORY_CLEARED if compaction
   * cleared that tree here and no peer serves its root (its other nodes are fetched as read).
   */
  async needTree (len: number): Promise<void> {
    if (len > 1 && len < this.clearedTo) await this.history(len - 1)
  }
}
