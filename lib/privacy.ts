/**
 * An encrypted database, from this peer's side: whether it is one (and whether this peer can read
 * it or only seeds it blind), the keyring, the epochs, and a blind seeder's way of finding the logs
 * it carries. The engine asks; this room answers and holds the state.
 *
 * Modes:
 * - 'plain': an unencrypted database (every database before encryption, and any created without
 *   `encrypted`).
 * - 'encrypted': this peer holds a key of the database (it created it with `encrypted: true`, was
 *   handed a key by pairing or `encryptionKey`, or reads grants sealed to it): every log it opens
 *   decrypts with the keyring; membership comes from the logs' clear blocks.
 * - 'blind': opened by key alone on an encrypted database: it downloads, verifies and serves every
 *   log it finds, reads nothing (MESHBEE_BLIND), folds no view.
 * - null: opened by key alone, undecided until the creator's first block arrives and shows whether
 *   the database is encrypted.
 */
import type Hypercore from 'hypercore'
import { Keyring, boxPublicKey, encryptedLog, epochIdOf, newEpochKey } from './crypt.js'
import { ADD_READER, ADD_WRITER, MEMBERSHIP_RANGE, PRINCIPAL, PRINCIPAL_KEY, decodeMembership } from './entry.js'
import { Epochs } from './epochs.js'
import { invalidArgument } from './errors.js'
import type { Member } from './membership.js'
import type { WriterLog } from './writer-log.js'

export type PrivacyMode = 'plain' | 'encrypted' | 'blind'

/** Where a peer keeps its mode in its own log's store (Hypercore user data), beside the identity. */
const ENCRYPTION = 'meshbee/encryption'
const BLIND = 'meshbee/blind'
const PRINCIPAL_HEX = PRINCIPAL_KEY.toString('hex')

export interface PrivacyOptions {
  /** Create the database encrypted (a new database only). */
  encrypted?: boolean
  /** A key of the database's epochs, handed over out of band (pairing does): makes this peer read it. */
  encryptionKey?: Uint8Array
}

export class Privacy {
  mode: PrivacyMode | null = null
  readonly keyring = new Keyring()
  readonly epochs: Epochs
  /** The key this peer was first given or made (`db.encryptionKey`). */
  baseKey: Buffer | null = null
  /** Whether the creator's first block showed an encrypted database (encrypted mode). */
  private checked = false
  /** Whether the creator's first block was asked for (undecided mode). */
  private asked = false
  /** How far each log's clear blocks were followed for adds (blind mode). */
  private readonly followed = new Map<string, number>()

  constructor (private readonly opts: PrivacyOptions, private readonly own: () => Hypercore, writers: ReadonlyMap<string, WriterLog>) {
    this.epochs = new Epochs(this.keyring, () => ({ id: Buffer.from(this.own().key).toString('hex'), keyPair: this.signingKeyPair() }),
      (id) => {
        const r = writers.get(id)?.records.get(PRINCIPAL_HEX)
        return r !== undefined && r.entry.type === PRINCIPAL ? r.entry.box : null
      }, writers)
  }

  /** The own log's signing key pair (null if the store holds no secret key for it). */
  signingKeyPair (): { publicKey: Uint8Array, secretKey: Uint8Array } | null {
    const kp = (this.own() as unknown as { keyPair?: { publicKey: Uint8Array, secretKey?: Uint8Array | null } | null }).keyPair
    return kp === undefined || kp === null || kp.secretKey === undefined || kp.secretKey === null ? null : { publicKey: kp.publicKey, secretKey: kp.secretKey }
  }

  /** The PRINCIPAL entry this peer's log still has to state (an encrypted database's member or reader), or null. */
  principalDue (ownLog: WriterLog): Buffer | null {
    if (this.mode !== 'encrypted' || ownLog.records.has(PRINCIPAL_HEX)) return null
    const kp = this.signingKeyPair()
    return kp === null ? null : boxPublicKey(kp.publicKey)
  }

  /**
   * Decides the mode from what the own log's store remembers and the options. `fresh`: the
   * directory holds no database yet; `creator`: this peer creates it (no key given).
   */
  async open (fresh: boolean, creator: boolean): Promise<void> {
    const core = this.own()
    const stored = await core.getUserData(ENCRYPTION) as Buffer | null
    const blind = await core.getUserData(BLIND) as Buffer | null
    const given = this.opts.encryptionKey === undefined ? null : Buffer.from(this.opts.encryptionKey)
    if (given !== null && given.byteLength !== 32) throw invalidArgument('encryptionKey must be 32 bytes')
    let key = stored ?? given
    if (key === null && this.opts.encrypted === true) {
      if (!fresh || !creator) throw invalidArgument('encrypted: true creates a new database; to join an encrypted one, pair with an invite or pass its encryptionKey')
      key = newEpochKey()
    }
    if (key !== null) {
      if (stored === null) await core.setUserData(ENCRYPTION, key)
      if (blind !== null) await core.setUserData(BLIND, null)
      if (given !== null && stored !== null) this.keyring.add(given)
      this.keyring.add(key)
      // until a fold finds a clean epoch: what the log's header (its first block) is sealed under
      this.keyring.current = epochIdOf(key)
      this.baseKey = key
      this.mode = 'encrypted'
    } else if (blind !== null) {
      this.mode = 'blind'
    } else if (creator) {
      this.mode = 'plain'
    }
  }

  /** Sets a log's decryption (before its Hyperbee is made: sessions inherit it). */
  async prepare (core: Hypercore): Promise<void> {
    if (this.mode === 'encrypted') await (core as unknown as { setEncryption: (p: unknown) => Promise<void> }).setEncryption(this.keyring.provider)
  }

  /**
   * Decides an undecided mode from the creator's first block as stored (null while it is not
   * held). A peer that finds the database encrypted becomes a blind seeder, for good.
   */
  async decide (creator: Hypercore, schedule: () => void): Promise<PrivacyMode | null> {
    if (this.mode === 'encrypted' && !this.checked) {
      // a key given for a plain database would make every clear block unreadable: refuse it
      const first = await creator.get(0, { wait: false, raw: true } as never).catch(() => null) as Uint8Array | null
      if (first !== null) {
        if (!encryptedLog(first)) throw invalidArgument('encryptionKey was given for a database that is not encrypted: open it without one')
        this.checked = true
      }
    }
    if (this.mode !== null) return this.mode
    const block = await creator.get(0, { wait: false, raw: true } as never).catch(() => null) as Uint8Array | null
    if (block === null) {
      // ask for it first (the whole-log download takes blocks in any order), and fold once it is here
      if (!this.asked) {
        this.asked = true
        creator.get(0, { raw: true } as never).then(schedule, () => { this.asked = false })
      }
      return null
    }
    if (encryptedLog(block)) {
      await this.own().setUserData(BLIND, Buffer.from([1]))
      this.mode = 'blind'
    } else {
      this.mode = 'plain'
    }
    return this.mode
  }

  /**
   * A blind seeder's fold: follows every log's clear adds (from every log it reached, counted or
   * not: seeding more than the members' logs costs disk, never correctness) and opens their logs,
   * which download whole. Returns whether a log was opened.
   */
  async follow (writers: ReadonlyMap<string, WriterLog>, openWriter: (key: Buffer) => Promise<unknown>): Promise<boolean> {
    let opened = false
    for (const w of [...writers.values()]) {
      if (w.local) continue
      const from = this.followed.get(w.id) ?? 0
      const to = w.contiguous
      if (to <= from) continue
      for (const c of await w.clearKeys(from, to, MEMBERSHIP_RANGE)) {
        if (c.value === null) continue
        try {
          const e = decodeMembership(c.key, c.value)
          // readers' logs too: they state the public keys their grants are sealed to
          if ((e.type === ADD_WRITER || e.type === ADD_READER) && !writers.has(Buffer.from(e.writer).toString('hex'))) {
            await openWriter(Buffer.from(e.writer))
            opened = true
          }
        } catch {}
      }
      this.followed.set(w.id, to)
    }
    return opened
  }

  /** The key a device admitted now is handed (the epoch own writes seal under; null for a plain database). */
  handOver (): Buffer | null {
    if (this.mode !== 'encrypted') return null
    const current = this.keyring.current
    return (current === null ? undefined : this.keyring.get(current.toString('hex'))) ?? this.baseKey
  }

  /** After a membership read: learns the keys granted to this peer. */
  refresh (writers: Iterable<WriterLog>, members: ReadonlyMap<string, Member>): void {
    if (this.mode === 'encrypted') this.epochs.refresh(writers, members)
  }
}
