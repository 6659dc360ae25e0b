/**
 * Key epochs of an encrypted database: which epoch keys this peer holds, which grants its logs
 * record, which grants are still due, and which epoch own writes may be sealed under.
 *
 * An epoch is a random key; members hand it to each other as grants in their logs (KEY_GRANT: the
 * key sealed to one recipient's writer key, stored clear like all membership records). A grant
 * counts, like a membership record, iff its author is a writer (not a reader) and it lies below the
 * author's cut. Three rules keep every reader able to read and a removed device out of what is
 * written after its removal:
 *
 * - Grant what is due: a writer grants every epoch it holds to every live member and reader that
 *   has no counted grant of it (new members read the history; concurrent grants only repeat) —
 *   except to one its maker left out on purpose. An epoch made by `rotate` records how far its
 *   maker had read each log's membership (EPOCH); a member whose add and public key lay within
 *   that was known to the maker, so no grant of it means the maker had it removed. Without this, a
 *   member that has not folded a removal yet would grant the new epoch to the removed device.
 *   Grants are sealed to the public key each writer states in its own log (PRINCIPAL): a member
 *   whose log states none yet gets its grants once it does.
 * - Seal only under a clean epoch: one whose counted grants all come from, and all go to, members
 *   that are live now. A removal makes every epoch the removed device was given (or gave) unclean
 *   the moment it is folded, so nothing written after that is sealed under a key it holds.
 * - No clean epoch held: make one, granted to every live member and reader (including itself),
 *   before the write.
 *
 * Concurrent removals and adds settle by the same rules: whatever a member saw when it made an
 * epoch, the grants due are written by whoever holds it, and an epoch someone removed was given
 * stops being used once the removal is folded. Which clean epoch a writer picks may differ
 * between peers for a while; every entry names its epoch, so any reader holding it reads it.
 */
import { epochIdOf, newEpochKey, sealTo, unseal, type Keyring } from './crypt.js'
import { ADD_READER, ADD_WRITER, EPOCH, KEY_GRANT, PRINCIPAL_KEY, REMOVE_WRITER, grantKey } from './entry.js'
import { hex } from './keys.js'
import { live, type Member } from './membership.js'
import type { WriterLog } from './writer-log.js'

/**
 * One epoch as the logs record it: who granted it, and to whom (writer keys, hex); and, for one
 * made by `rotate`, how far its maker had read each log's membership (its EPOCH entry).
 */
export interface EpochRecord {
  authors: Set<string>
  recipients: Set<string>
  vector: Map<string, number> | null
  /**
   * Everyone any record of any reached log names as holding it, counted or not: the authors and
   * recipients of its grants and the author of its EPOCH entry. A member removed before it made an
   * epoch (not knowing it yet) wrote that epoch's records past its cut: they do not count, but it
   * holds the key, and the epoch must not look clean to the others.
   */
  holders: Set<string>
}

const PRINCIPAL_HEX = PRINCIPAL_KEY.toString('hex')

/** A grant to write: an epoch's key sealed to a recipient. */
export interface DueGrant { epoch: Buffer, recipient: Buffer, sealed: Buffer }

export class Epochs {
  /** The epochs the counted grants name, by id (hex). */
  table = new Map<string, EpochRecord>()

  /**
   * @param own - this peer's writer key (hex: its log's key, what grants name) and its log's
   *   signing key pair (what opens grants sealed to it; null on a peer without one)
   * @param boxOf - a writer's public key for sealing (its PRINCIPAL entry), by writer key (hex); null until its log states one
   */
  constructor (readonly keyring: Keyring, private readonly own: () => { id: string, keyPair: { publicKey: Uint8Array, secretKey: Uint8Array } | null },
    private readonly boxOf: (id: string) => Uint8Array | null, private readonly writers: ReadonlyMap<string, WriterLog>) {}

  /**
   * Whether an epoch's maker knew `id` as a member with a public key when it made the epoch: the
   * log's PRINCIPAL entry and an add of it (any log's) lie within the maker's EPOCH vector.
   */
  private knownToMaker (vector: ReadonlyMap<string, number>, id: string): boolean {
    const stated = this.writers.get(id)?.records.get(PRINCIPAL_HEX)
    if (stated === undefined || stated.seq >= (vector.get(id) ?? 0)) return false
    for (const w of this.writers.values()) {
      const read = vector.get(w.id) ?? 0
      for (const r of w.records.values()) {
        if ((r.entry.type === ADD_WRITER || r.entry.type === ADD_READER) && hex(r.entry.writer) === id && r.seq < read) return true
      }
    }
    return false
  }

  /**
   * Whether the maker of an epoch left a live member out for a removal that no longer counts: a
   * removal of `id` lies within the maker's EPOCH vector and is held here, and yet `id` is live
   * here (its author was removed first, say, which the maker had not read). A member that has not
   * folded the removal holds no such record, so it still grants nothing to the removed device.
   */
  private undone (vector: ReadonlyMap<string, number>, id: string): boolean {
    for (const w of this.writers.values()) {
      const read = vector.get(w.id) ?? 0
      for (const r of w.records.values()) {
        if (r.entry.type === REMOVE_WRITER && hex(r.entry.writer) === id && r.seq < read) return true
      }
    }
    return false
  }

  /**
   * Reads the counted grants of every log's membership records, and opens those sealed to this
   * peer (a key that does not hash to the id it is granted under is refused).
   */
  refresh (writers: Iterable<WriterLog>, members: ReadonlyMap<string, Member>): void {
    const table = new Map<string, EpochRecord>()
    const entry = (id: string): EpochRecord => {
      let t = table.get(id)
      if (t === undefined) table.set(id, t = { authors: new Set(), recipients: new Set(), vector: null, holders: new Set() })
      return t
    }
    const { id: own, keyPair: kp } = this.own()
    const handed: Array<{ from: string, epoch: Uint8Array, sealed: Uint8Array }> = []
    for (const w of writers) {
      const author = members.get(w.id)
      const counts = author !== undefined && author.reader !== true
      for (const r of w.records.values()) {
        const e = r.entry
        if (e.type === EPOCH || e.type === KEY_GRANT) {
          const t = entry(hex(e.epoch))
          t.holders.add(w.id)
          if (e.type === KEY_GRANT) t.holders.add(hex(e.writer))
        }
        if (counts && author.removed && r.seq >= author.cut && e.type === KEY_GRANT && hex(e.writer) === own) {
          // a removed writer's handover (see `due`): opened below, once the counted grants are known
          handed.push({ from: w.id, epoch: e.epoch, sealed: e.sealed })
          continue
        }
        if (!counts || r.seq >= author.cut) continue
        if (e.type === EPOCH) {
          const t = entry(hex(e.epoch))
          // (one maker writes it; two, the lengths of both count as known)
          t.vector ??= new Map()
          for (const [wk, len] of e.vector) t.vector.set(hex(wk), Math.max(len, t.vector.get(hex(wk)) ?? 0))
          continue
        }
        if (e.type !== KEY_GRANT) continue
        const id = hex(e.epoch)
        const t = entry(id)
        t.authors.add(w.id)
        const to = hex(e.writer)
        t.recipients.add(to)
        if (to === own) this.open(e.epoch, e.sealed, kp)
      }
    }
    this.table = table
    // A handover counts for nothing, and gives only an epoch its author held by a counted record
    // (it made or was granted it while a member): entries that count may be sealed under that one,
    // and every peer that read those records takes it for unclean. One it took only past its cut
    // seals nothing that counts, and a live member granting it on would hand it a clean look.
    for (const h of handed) {
      const t = table.get(hex(h.epoch))
      if (t !== undefined && (t.authors.has(h.from) || t.recipients.has(h.from))) this.open(h.epoch, h.sealed, kp)
    }
  }

  /** Opens a grant sealed to this peer: a key that does not hash to the id it is granted under is refused. */
  private open (epoch: Uint8Array, sealed: Uint8Array, kp: { publicKey: Uint8Array, secretKey: Uint8Array } | null): void {
    const id = hex(epoch)
    if (this.keyring.has(id) || kp === null) return
    const key = unseal(sealed, kp)
    if (key !== null && hex(epochIdOf(key)) === id) this.keyring.add(key)
  }

  /**
   * Whether an epoch is clean: recorded (a counted grant), every author of its counted grants a
   * live writer, and everyone any record names as holding it live now.
   */
  clean (id: string, members: ReadonlyMap<string, Member>): boolean {
    const t = this.table.get(id)
    if (t === undefined || t.authors.size === 0) return false
    for (const a of t.authors) {
      const m = members.get(a)
      if (!live(m) || m.reader === true) return false
    }
    for (const h of t.holders) if (!live(members.get(h))) return false
    return true
  }

  /** The clean epoch held to seal own writes under (the greatest id, so peers tend to agree), or null. */
  writing (members: ReadonlyMap<string, Member>): Buffer | null {
    let best: string | null = null
    for (const id of this.keyring.ids()) if (this.clean(id, members) && (best === null || id > best)) best = id
    return best === null ? null : Buffer.from(best, 'hex')
  }

  /**
   * The grants due from this writer: every epoch it holds, to every live member and reader without
   * one. `removed`: this writer was removed, and hands over the epochs it held by a counted record
   * (see `refresh`), each to each member once. Its grants past its cut count for nothing (no
   * recipient is recorded by them), but they give the key: a member added concurrently with an
   * epoch's making, which only the removed device still holds (it removed itself, say, before
   * granting it), could otherwise never read what was sealed under it, entries that count among
   * them. The epoch stays unclean (the removed device is a counted holder of it).
   */
  due (members: ReadonlyMap<string, Member>, removed = false): DueGrant[] {
    const out: DueGrant[] = []
    const me = this.own().id
    const mine = this.writers.get(me)?.records
    for (const id of this.keyring.ids()) {
      const key = this.keyring.get(id) as Buffer
      const t = this.table.get(id)
      // (a removed writer hands over only what it held by a counted record: see `refresh`)
      if (removed && t?.authors.has(me) !== true && t?.recipients.has(me) !== true) continue
      const have = t?.recipients
      for (const [to, m] of members) {
        if (!live(m) || have?.has(to) === true) continue
        if (removed && mine?.has(hex(grantKey(Buffer.from(id, 'hex'), Buffer.from(to, 'hex')))) === true) continue
        if (t?.vector != null && this.knownToMaker(t.vector, to) && !this.undone(t.vector, to)) continue
        const grant = this.grant(Buffer.from(id, 'hex'), key, to)
        if (grant !== null) out.push(grant)
      }
    }
    return out
  }

  /** An epoch's key sealed to `to`'s stated public key; null while its log states none. */
  private grant (epoch: Buffer, key: Buffer, to: string): DueGrant | null {
    const box = this.boxOf(to)
    const sealed = box === null ? null : sealTo(key, box)
    return sealed === null ? null : { epoch, recipient: Buffer.from(to, 'hex'), sealed }
  }

  /**
   * A new epoch, held, its grants to every live member and reader, and its EPOCH vector (how far
   * this peer has read each log's membership).
   */
  rotate (members: ReadonlyMap<string, Member>): { epoch: Buffer, grants: DueGrant[], vector: Array<[Buffer, number]> } {
    const key = newEpochKey()
    this.keyring.add(key)
    const epoch = epochIdOf(key)
    const grants: DueGrant[] = []
    for (const [to, m] of members) {
      const grant = live(m) ? this.grant(epoch, key, to) : null
      if (grant !== null) grants.push(grant)
    }
    const vector: Array<[Buffer, number]> = [...this.writers.values()].map((w) => [w.key, w.membershipLength])
    return { epoch, grants, vector }
  }
}
