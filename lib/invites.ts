/**
 * Invites, from the member's side: the invites this peer made, what it checks when a candidate
 * comes (revoked, expired, used up), and the pairing host that answers on the swarm while the
 * database is joined (lib/pairing.ts is the transport).
 *
 * The book lives in the own log's store (Hypercore user data, beside the identity), so it survives
 * a lost view and restarts; it never holds an invite's secret, only what checks a request (the
 * invite's public key) and the terms. Only this peer answers its invites: uses are counted in one
 * place, so an invite for one use admits one device, whichever members are online.
 */
import type Hypercore from 'hypercore'
import { MeshError, invalidArgument } from './errors.js'
import { PairingHost, makeInvite, parseInvite, type PairingAnswer, type Role } from './pairing.js'
import type { InviteInfo } from './types.js'

export type { InviteInfo }

const BOOK = 'meshbee/invites'
/** An invite expires after this long unless `expires` says otherwise. */
export const DEFAULT_INVITE_TTL = 7 * 24 * 60 * 60 * 1000

/** One invite as the book keeps it. */
interface Kept {
  id: string
  publicKey: string
  discoveryKey: string
  roleSignatures: { writer: string, reader: string }
  role: Role
  /** ms since the epoch. */
  expires: number
  uses: number
  /** Writer keys (hex) admitted with it, in order. */
  admitted: string[]
  revoked: boolean
}

/** What the book needs of the database. */
export interface InviteHost {
  readonly key: Buffer
  /** The own log's core (its user data holds the book). */
  own: () => Hypercore
  /** Adds a writer or reader (a reader of a plain database needs nothing: the key reads it). */
  admit: (role: Role, key: Buffer) => Promise<void>
  /** The encryption key a new member gets now (null for a plain database). */
  encryptionKey: () => Buffer | null
  /** Whether a key (hex) is a live member or reader now. */
  isLive: (id: string) => boolean
  wallClock: () => number
}

const refusal = (code: 'MESHBEE_INVITE_USED' | 'MESHBEE_INVITE_EXPIRED' | 'MESHBEE_INVITE_REVOKED', msg: string): MeshError => new MeshError(code, msg)

export class Invites {
  private book: Kept[] = []
  private pairing: PairingHost | null = null
  /** Admissions run one at a time: two candidates of a one-use invite cannot both pass. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor (private readonly h: InviteHost) {}

  async load (): Promise<void> {
    const raw = await this.h.own().getUserData(BOOK) as Buffer | null
    try {
      this.book = raw === null ? [] : JSON.parse(raw.toString('utf8')) as Kept[]
    } catch {
      this.book = []
    }
  }

  private async save (): Promise<void> {
    await this.h.own().setUserData(BOOK, Buffer.from(JSON.stringify(this.book)))
  }

  /** Makes an invite; returns its string (the only copy of its secret). */
  async create (opts: { uses?: unknown, expires?: unknown, role?: unknown }): Promise<string> {
    const role = opts.role ?? 'writer'
    if (role !== 'writer' && role !== 'reader') throw invalidArgument(`role must be 'writer' or 'reader' (got ${String(role)})`)
    const uses = opts.uses ?? 1
    if (!Number.isSafeInteger(uses) || (uses as number) < 1) throw invalidArgument('uses must be a whole number, 1 or more')
    const now = this.h.wallClock()
    const expires = opts.expires ?? now + DEFAULT_INVITE_TTL
    if (!Number.isSafeInteger(expires) || (expires as number) <= now) throw invalidArgument('expires must be a time in ms since the epoch, in the future')
    const made = makeInvite(this.h.key, { role, expires: expires as number })
    const kept: Kept = {
      id: made.terms.id.toString('hex'),
      publicKey: made.publicKey.toString('hex'),
      discoveryKey: made.discoveryKey.toString('hex'),
      roleSignatures: { writer: made.roleSignatures.writer.toString('hex'), reader: made.roleSignatures.reader.toString('hex') },
      role,
      expires: expires as number,
      uses: uses as number,
      admitted: [],
      revoked: false
    }
    this.book.push(kept)
    await this.save()
    this.host(kept)
    return made.invite
  }

  /** Revokes an invite (by its string or id): no device pairs with it from now on. False if unknown. */
  async revoke (invite: string): Promise<boolean> {
    let id = invite
    if (!/^[0-9a-f]{64}$/.test(invite)) id = parseInvite(invite).id.toString('hex')
    const kept = this.book.find((k) => k.id === id)
    if (kept === undefined) return false
    kept.revoked = true
    await this.save()
    this.pairing?.remove(Buffer.from(kept.id, 'hex'))
    return true
  }

  list (): InviteInfo[] {
    return this.book.map((k) => ({ id: k.id, role: k.role, expires: k.expires, uses: k.uses, used: k.admitted.length, revoked: k.revoked }))
  }

  /** Answers candidates on a swarm (the database joined it). */
  attach (swarm: unknown): void {
    if (this.pairing !== null) return
    this.pairing = new PairingHost(swarm)
    for (const k of this.book) this.host(k)
  }

  async detach (): Promise<void> {
    const p = this.pairing
    this.pairing = null
    await p?.close()
  }

  private host (k: Kept): void {
    // used-up invites are hosted too, so that a device trying one hears MESHBEE_INVITE_USED
    if (this.pairing === null || k.revoked || k.expires <= this.h.wallClock()) return
    this.pairing.add({
      publicKey: Buffer.from(k.publicKey, 'hex'),
      discoveryKey: Buffer.from(k.discoveryKey, 'hex'),
      roleSignatures: { writer: Buffer.from(k.roleSignatures.writer, 'hex'), reader: Buffer.from(k.roleSignatures.reader, 'hex') },
      expires: k.expires
    }, async ({ userData }) => await this.admit(k.id, userData))
  }

  /** Checks an invite for a candidate (its writer key), admits it, and answers. */
  private admit (id: string, candidate: Buffer): Promise<PairingAnswer> {
    const run = this.queue.then(async (): Promise<PairingAnswer> => {
      const k = this.book.find((x) => x.id === id)
      if (k === undefined || k.revoked) throw refusal('MESHBEE_INVITE_REVOKED', 'The invite was revoked')
      const who = candidate.toString('hex')
      const answer = (): PairingAnswer => ({ key: this.h.key, encryptionKey: this.h.encryptionKey(), role: k.role })
      // a device asks again (its answer lost, or a replay): answered again only while it is still a
      // member — a device removed since must not be handed the keys of now
      if (k.admitted.includes(who)) {
        // (a reader of a plain database is no member: it holds the key, nothing to take back)
        const member = k.role === 'writer' || this.h.encryptionKey() !== null
        if (!member || this.h.isLive(who)) return answer()
        throw refusal('MESHBEE_INVITE_USED', 'The invite was used up')
      }
      if (k.expires <= this.h.wallClock()) throw refusal('MESHBEE_INVITE_EXPIRED', 'The invite expired')
      if (k.admitted.length >= k.uses) throw refusal('MESHBEE_INVITE_USED', 'The invite was used up')
      // the use is recorded before the device is added: a crash in between spends it, never frees it
      k.admitted.push(who)
      await this.save()
      try {
        await this.h.admit(k.role, candidate)
      } catch (err) {
        k.admitted.splice(k.admitted.indexOf(who), 1)
        await this.save().catch(() => {})
        throw err
      }
      return answer()
    })
    this.queue = run.catch(() => {})
    return run
  }
}
