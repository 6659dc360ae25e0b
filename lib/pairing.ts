/**
 * Pairing by invite: the transport under one-string invites, over Holepunch's blind-pairing.
 *
 * An invite is a key pair made for one use. Its seed (the secret) travels in the invite string; the
 * member keeps only its public key. The candidate signs its request (its writer key, as
 * `userData`) with the invite's key pair and encrypts it to a key derived from the public key, so
 * only a holder of the public key can read the request, and a request that opens with it proves
 * that the candidate holds the seed. The member answers encrypted to that request's session: the
 * database key, its encryption key, and the role.
 *
 * Requests and answers go over a protomux channel on every swarm connection of the database's
 * topic (the candidate joins that topic), and, for peers that cannot connect, through records on
 * the DHT that both sides poll.
 *
 * What blind-pairing leaves to us, and how this file fills it in:
 * - The invite's discovery key must be the discovery key of the database key (the candidate checks
 *   the key it gets against it), so every invite of one database shares one topic and one
 *   blind-pairing member. PairingHost keeps the invites of a topic side by side and finds the one a
 *   request names by its invite id.
 * - blind-pairing neither counts uses nor checks expiry: the invite string carries an expiry only
 *   for show, and the answer's status (1 rejected, 2 used, 3 expired) is whatever the member says.
 *   `admit` decides, and PairingHost also refuses past `expires` when it is given one.
 * - An accepting answer has no role field; its only free field is `additional`, bytes that must be
 *   signed by the invite's own key pair. The member does not keep the seed (a copy of it is a copy
 *   of the invite), so makeInvite signs both possible roles while it still holds the seed, and the
 *   member sends the one `admit` picks.
 * - A refusal carries only the status number, so of a member's codes only MESHBEE_INVITE_USED and
 *   MESHBEE_INVITE_EXPIRED cross; any other refusal arrives as a generic one.
 *
 * The invite string is z-base32 of blind-pairing's invite bytes and a 4-byte checksum of them. The
 * checksum turns a mistyped or altered string into MESHBEE_BAD_INVITE at once, instead of a request
 * that no member can open (members stay silent to those: they cannot encrypt an answer to a key
 * they do not hold) and so a wait until the timeout. It is no defence against a deliberate forger,
 * who can recompute it: the signature on the request is that defence. So: a changed character is
 * MESHBEE_BAD_INVITE; a well-formed invite no member made (another seed) or pointing at another
 * topic gets no answer (MESHBEE_PAIR_TIMEOUT); a changed expiry with a recomputed checksum still
 * pairs, as the member goes by the terms it kept, not by the string.
 *
 * The database key is not in the invite, only its discovery key: the key lets anyone replicate and
 * read the database. An answer sent through the DHT (to a candidate the member cannot reach) is
 * encrypted under keys the invite and the candidate's writer key derive, so the string stays a
 * secret until it expires, used or not.
 */
import BlindPairing, { type AdditionalData, type Member, type MemberRequest, type PairedAuth } from 'blind-pairing'
import c from 'compact-encoding'
import * as crypto from 'hypercore-crypto'
import * as z32 from 'z32'

export type Role = 'writer' | 'reader'

/** What an invite grants (the role) and the facts the member side checks. */
export interface InviteTerms {
  /** blind-pairing's invite id (a hash of the invite's public key); PairingHost.remove takes it. */
  id: Buffer
  role: Role
  /** ms since the epoch, 0 = never. */
  expires: number
}

/** The role tags, each signed by an invite's key pair at makeInvite (see the file comment). */
export interface RoleSignatures { writer: Buffer, reader: Buffer }

/** What a member hands an admitted candidate. */
export interface PairingAnswer { key: Buffer, encryptionKey: Buffer | null, role: Role }

/**
 * An invite as the member keeps it (the fields of makeInvite's result, less the string). The public
 * key lets its holder read the invite's requests and answer them: keep it among those who may.
 */
export interface HostedInvite {
  publicKey: Buffer
  discoveryKey: Buffer
  /** From makeInvite: lets the answer carry the role. */
  roleSignatures: RoleSignatures
  /** ms since the epoch; when given (and not 0), requests from then on are refused as expired without asking `admit`. */
  expires?: number
}

/** Decides on one candidate: resolves with what it gets, or throws (an Error with a `code`) to refuse. */
export type Admit = (candidate: { userData: Buffer }) => Promise<PairingAnswer>

export type PairingErrorCode =
  | 'MESHBEE_BAD_INVITE'
  | 'MESHBEE_INVITE_REFUSED'
  | 'MESHBEE_PAIR_TIMEOUT'
  | 'MESHBEE_PAIR_ABORTED'
  | 'MESHBEE_INVALID_ARGUMENT'

/** A refusal code that crosses the wire (any other code arrives as a generic refusal). */
export type RefusalReason = 'MESHBEE_INVITE_USED' | 'MESHBEE_INVITE_EXPIRED'

/** The errors of this module. Match on `code`; a refusal's `reason` is the member's code when it crossed the wire. */
export class PairingError extends Error {
  readonly code: PairingErrorCode
  /** For MESHBEE_INVITE_REFUSED: the member's code if it could be carried, else null. */
  readonly reason: RefusalReason | null

  constructor (code: PairingErrorCode, message: string, reason: RefusalReason | null = null) {
    super(message)
    this.code = code
    this.reason = reason
    this.name = 'PairingError'
  }
}

const ROLES: readonly Role[] = ['writer', 'reader']
/** Signed per role: text, so that a signature over one can never pass for the other or for anything else. */
const ROLE_TAG: Record<Role, Buffer> = {
  writer: Buffer.from('meshbee/pairing/v1/role/writer'),
  reader: Buffer.from('meshbee/pairing/v1/role/reader')
}
const CHECKSUM_NS = Buffer.from('meshbee/pairing/v1/invite-checksum')
const CHECKSUM_BYTES = 4
/** blind-pairing-core's invite id: hash(namespace 'blind-pairing' #2, public key). A test pins it to its createInvite. */
const NS_INVITE_ID = crypto.namespace('blind-pairing', 8)[2]
/** blind-pairing's answer statuses (blind-pairing-core lib/errors.js): 1 rejected, 2 used, 3 expired. */
const STATUS_REJECTED = 1
const STATUS_USED = 2
const STATUS_EXPIRED = 3
/** How the candidate's side of blind-pairing-core names each status when it rejects an answer. */
const REASON_OF = new Map<string, RefusalReason | null>([
  ['PAIRING_REJECTED', null],
  ['INVITE_USED', 'MESHBEE_INVITE_USED'],
  ['INVITE_EXPIRED', 'MESHBEE_INVITE_EXPIRED']
])
/** Decisions under way per invite, at most this many (a candidate asks again while one runs: it shares it). */
const ANSWERS_KEPT = 256
/** blind-pairing stores the expiry as uint32 seconds. */
const MAX_EXPIRES = 0xffffffff * 1000

const isKey = (b: unknown): b is Buffer => Buffer.isBuffer(b) && b.byteLength === 32
const badInvite = (why: string): PairingError => new PairingError('MESHBEE_BAD_INVITE', `Not a meshbee invite: ${why}`)
const badArgument = (why: string): PairingError => new PairingError('MESHBEE_INVALID_ARGUMENT', why)
const checksum = (bytes: Buffer): Buffer => crypto.hash([CHECKSUM_NS, bytes]).subarray(0, CHECKSUM_BYTES)
const inviteId = (publicKey: Buffer): Buffer => crypto.hash([NS_INVITE_ID, publicKey])

/**
 * Makes an invite for a database: the string to hand out, and what the member keeps to check it
 * (`terms`, and `publicKey`, `discoveryKey` and `roleSignatures` for PairingHost.add). Nothing
 * here is secret but the string: the seed is not kept.
 *
 * @param dbKey - the database key (32 bytes); the invite carries only its discovery key
 * @param opts.expires - ms since the epoch, 0 = never; the string shows it rounded down to the second
 * @throws PairingError `MESHBEE_INVALID_ARGUMENT` for a bad key, role or expiry
 */
export function makeInvite (dbKey: Buffer, opts: { role: Role, expires: number }): {
  invite: string
  terms: InviteTerms
  publicKey: Buffer
  discoveryKey: Buffer
  roleSignatures: RoleSignatures
} {
  if (!isKey(dbKey)) throw badArgument('The database key must be 32 bytes')
  if (!ROLES.includes(opts.role)) throw badArgument(`The role must be 'writer' or 'reader', not ${String(opts.role)}`)
  const expires = opts.expires
  if (!Number.isSafeInteger(expires) || expires < 0 || expires > MAX_EXPIRES) throw badArgument('expires must be ms since the epoch (0 = never), before 2106')
  const made = BlindPairing.createInvite(dbKey, { expires })
  const { secretKey } = crypto.keyPair(made.seed)
  const roleSignatures: RoleSignatures = {
    writer: crypto.sign(ROLE_TAG.writer, secretKey),
    reader: crypto.sign(ROLE_TAG.reader, secretKey)
  }
  secretKey.fill(0)
  return {
    invite: z32.encode(Buffer.concat([made.invite, checksum(made.invite)])),
    terms: { id: made.id, role: opts.role, expires },
    publicKey: made.publicKey,
    discoveryKey: made.discoveryKey,
    roleSignatures
  }
}

/**
 * Decodes an invite string (surrounding whitespace is ignored). The candidate needs the rest only
 * through pairCandidate; `expires` is the inviter's word, for show (members decide).
 *
 * @throws PairingError `MESHBEE_BAD_INVITE` for anything that is not exactly an invite this
 *   module wrote: not a string, a character outside z-base32, a wrong checksum, a blind-pairing
 *   invite it cannot read or without a discovery key
 */
export function parseInvite (invite: string): { discoveryKey: Buffer, id: Buffer, expires: number, bytes: Buffer } {
  if (typeof invite !== 'string') throw badInvite('not a string')
  const text = invite.trim()
  let all: Buffer
  try {
    all = z32.decode(text)
  } catch {
    throw badInvite('a character outside z-base32')
  }
  // z-base32 text can end in bits that decode to nothing: only the one spelling of the bytes is an invite
  if (all.byteLength <= CHECKSUM_BYTES || z32.encode(all) !== text) throw badInvite('not a whole invite')
  const bytes = Buffer.from(all.subarray(0, all.byteLength - CHECKSUM_BYTES))
  if (!checksum(bytes).equals(all.subarray(all.byteLength - CHECKSUM_BYTES))) throw badInvite('the checksum does not match (mistyped or altered)')
  let decoded
  try {
    decoded = BlindPairing.decodeInvite(bytes)
    // and nothing after the invite: the bytes must be what the fields encode to
    if (!Buffer.from(c.encode(BlindPairing.Invite as c.Encoder<unknown>, decoded)).equals(bytes)) throw new Error('trailing bytes')
  } catch {
    throw badInvite('blind-pairing cannot read it')
  }
  if (decoded.discoveryKey === null) throw badInvite('no discovery key')
  return { discoveryKey: decoded.discoveryKey, id: decoded.id, expires: decoded.expires, bytes }
}

/** One invite a host answers for. */
interface Hosted {
  publicKey: Buffer
  roleSignatures: RoleSignatures
  expires: number
  admit: Admit
  /**
   * Decisions under way, by request session (one per candidate and invite): a candidate repeats its
   * request while `admit` runs, and shares the decision. Once settled it is forgotten, so a later
   * request is decided anew (`admit` answers a device it admitted again only while it is still a
   * member, and a transient failure is not remembered as a refusal).
   */
  answers: Map<string, Promise<Outcome>>
}

type Outcome = { answer: PairingAnswer, status: 0 } | { answer: null, status: number }

/** The invites of one topic (one database), behind one blind-pairing member. */
interface Topic { discoveryKey: Buffer, member: Member, invites: Map<string, Hosted> }

/**
 * The member side: answers candidates of the invites it is given, over `swarm` (the same one the
 * database replicates on fits: the pairing channel sits beside replication on each connection).
 *
 * Each candidate asks repeatedly (to each peer in turn, and through the DHT), so `admit` runs once
 * per candidate and invite and every later request of it gets the same answer. Several members
 * may hold one invite and each asks its own `admit`: it should give a candidate that it (or
 * another member) already admitted through this invite the same acceptance, not a "used" refusal.
 * A request that does not open with the invite's public key (a forged or altered invite) gets no
 * answer and never reaches `admit`.
 */
export class PairingHost {
  private readonly pairing: BlindPairing
  private readonly topics = new Map<string, Topic>()
  private readonly closing = new Set<Promise<void>>()
  private closed = false

  /**
   * @param swarm - a Hyperswarm; PairingHost listens to its connections, joins each invite's topic
   *   as a server and never destroys it
   * @param opts.poll - ms between looks for requests left on the DHT (blind-pairing's default, 7
   *   minutes, when not given): only for candidates that cannot connect; connected ones are answered at once
   */
  constructor (swarm: unknown, opts: { poll?: number } = {}) {
    this.pairing = new BlindPairing(swarm, opts.poll === undefined ? {} : { poll: opts.poll })
  }

  /**
   * Starts answering candidates of one invite (again with the new `admit`, if it was added before).
   * `admit` decides: return what the candidate gets, or throw an Error with a `code` to refuse
   * (MESHBEE_INVITE_USED and MESHBEE_INVITE_EXPIRED reach the candidate as such, anything else as a
   * generic refusal). An answer whose key is not the database's (by discovery key) is sent as a
   * generic refusal instead. A candidate whose userData is not 32 bytes is refused without asking.
   */
  add (invite: HostedInvite, admit: Admit): void {
    if (this.closed) throw badArgument('The pairing host is closed')
    if (!isKey(invite.publicKey) || !isKey(invite.discoveryKey)) throw badArgument('An invite needs its 32-byte publicKey and discoveryKey')
    const sigs = invite.roleSignatures
    if (sigs === undefined || !ROLES.every((r) => Buffer.isBuffer(sigs[r]) && crypto.verify(ROLE_TAG[r], sigs[r], invite.publicKey))) {
      throw badArgument('An invite needs the roleSignatures makeInvite gave with it')
    }
    const dk = invite.discoveryKey.toString('hex')
    let topic = this.topics.get(dk)
    if (topic === undefined) {
      const t: Topic = { discoveryKey: invite.discoveryKey, member: null as unknown as Member, invites: new Map() }
      t.member = this.pairing.addMember({ discoveryKey: invite.discoveryKey, onadd: async (request) => { await this.answer(t, request) } })
      this.topics.set(dk, topic = t)
    }
    topic.invites.set(inviteId(invite.publicKey).toString('hex'), {
      publicKey: invite.publicKey,
      roleSignatures: sigs,
      expires: invite.expires ?? 0,
      admit,
      answers: new Map()
    })
  }

  /**
   * Stops answering: `key` is an invite id (`terms.id`) for that invite alone, or a discovery key
   * for every invite of that database. An answer already being decided is still sent.
   */
  remove (key: Buffer): void {
    const hex = key.toString('hex')
    const whole = this.topics.get(hex)
    if (whole !== undefined) {
      this.drop(whole)
      return
    }
    for (const topic of this.topics.values()) {
      if (topic.invites.delete(hex) && topic.invites.size === 0) this.drop(topic)
    }
  }

  /** Resolves once every topic of the invites added so far is announced on the DHT. */
  async flushed (): Promise<void> {
    await Promise.all([...this.topics.values()].map(async (t) => { await t.member.ready(); await t.member.flushed() }))
  }

  /** Stops answering and leaves the topics it joined; the swarm stays open. */
  async close (): Promise<void> {
    this.closed = true
    this.topics.clear()
    await this.pairing.close()
    await Promise.allSettled([...this.closing])
  }

  private drop (topic: Topic): void {
    this.topics.delete(topic.discoveryKey.toString('hex'))
    const p = topic.member.close().catch(() => {}).finally(() => this.closing.delete(p))
    this.closing.add(p)
  }

  /** One request for `topic`: answered, or left unanswered when it is not for an invite held here. */
  private async answer (topic: Topic, request: MemberRequest): Promise<void> {
    const hosted = topic.invites.get(request.inviteId.toString('hex'))
    if (hosted === undefined) return
    try {
      // decrypts the request and checks its signature by the invite's key pair: the candidate holds the seed
      request.open(hosted.publicKey)
    } catch {
      return
    }
    const session = (request.session as Buffer).toString('hex')
    let outcome = hosted.answers.get(session)
    if (outcome === undefined) {
      outcome = this.decide(topic, hosted, request.userData)
      if (hosted.answers.size >= ANSWERS_KEPT) hosted.answers.delete(hosted.answers.keys().next().value as string)
      hosted.answers.set(session, outcome)
      const settled = outcome
      void settled.finally(() => { if (hosted.answers.get(session) === settled) hosted.answers.delete(session) })
    }
    const { answer, status } = await outcome
    if (answer === null) {
      request.deny({ status })
      return
    }
    const additional: AdditionalData = { data: ROLE_TAG[answer.role], signature: hosted.roleSignatures[answer.role] }
    request.confirm({ key: answer.key, encryptionKey: answer.encryptionKey, additional })
  }

  private async decide (topic: Topic, hosted: Hosted, userData: Buffer | null): Promise<Outcome> {
    if (!isKey(userData)) return { answer: null, status: STATUS_REJECTED }
    if (hosted.expires > 0 && Date.now() >= hosted.expires) return { answer: null, status: STATUS_EXPIRED }
    let answer: PairingAnswer
    try {
      answer = await hosted.admit({ userData: Buffer.from(userData) })
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code
      return { answer: null, status: code === 'MESHBEE_INVITE_USED' ? STATUS_USED : code === 'MESHBEE_INVITE_EXPIRED' ? STATUS_EXPIRED : STATUS_REJECTED }
    }
    // the candidate would drop an answer whose key is not the database's: refuse it here instead
    const fits = isKey(answer?.key) && crypto.discoveryKey(answer.key).equals(topic.discoveryKey) &&
      (answer.encryptionKey === null || isKey(answer.encryptionKey)) && ROLES.includes(answer.role)
    if (!fits) return { answer: null, status: STATUS_REJECTED }
    return { answer: { key: answer.key, encryptionKey: answer.encryptionKey, role: answer.role }, status: 0 }
  }
}

/**
 * The candidate side: asks the members of the invite's database, over `swarm`, to admit
 * `userData` (this peer's writer key), and resolves with what a member handed over. Nothing of it
 * keeps running once it settles; the swarm stays open.
 *
 * @param opts.timeout - ms to wait for an answer; 0 or none waits until one comes (or `signal` aborts)
 * @param opts.poll - ms between looks for an answer left on the DHT (blind-pairing's default, 7
 *   minutes, when not given); a member that connects answers at once
 * @throws PairingError `MESHBEE_BAD_INVITE` (see parseInvite); `MESHBEE_INVITE_REFUSED` when a
 *   member refused, with its code as `reason` when it could be carried (else null);
 *   `MESHBEE_PAIR_TIMEOUT` after `timeout` ms without an answer (a forged invite, or no member
 *   online); `MESHBEE_PAIR_ABORTED` when `signal` aborts; `MESHBEE_INVALID_ARGUMENT` when
 *   `userData` is not 32 bytes
 */
export async function pairCandidate (swarm: unknown, invite: string, userData: Buffer, opts: { timeout?: number, signal?: AbortSignal, poll?: number } = {}): Promise<PairingAnswer> {
  const { bytes } = parseInvite(invite)
  if (!isKey(userData)) throw badArgument('userData (the writer key) must be 32 bytes')
  const { timeout = 0, signal } = opts
  if (signal?.aborted === true) throw new PairingError('MESHBEE_PAIR_ABORTED', 'Pairing was aborted')

  const pairing = new BlindPairing(swarm, opts.poll === undefined ? {} : { poll: opts.poll })
  return await new Promise<PairingAnswer>((resolve, reject) => {
    let settled = false
    let timer: NodeJS.Timeout | null = null
    // settles once blind-pairing has stopped (its close leaves the topic and takes back its DHT announce)
    const settle = (err: PairingError | null, answer?: PairingAnswer): void => {
      if (settled) return
      settled = true
      if (timer !== null) clearTimeout(timer)
      signal?.removeEventListener('abort', onabort)
      pairing.close().catch(() => {}).finally(() => { if (err !== null) reject(err); else resolve(answer as PairingAnswer) })
    }
    const onabort = (): void => { settle(new PairingError('MESHBEE_PAIR_ABORTED', 'Pairing was aborted')) }

    // onadd runs inside blind-pairing's own poll, which its close waits for: settle must not wait here
    const onadd = (auth: PairedAuth): void => {
      // blind-pairing has checked the signature on `data` (by the invite's key pair) and the key against the discovery key
      const role = ROLES.find((r) => auth.data !== null && ROLE_TAG[r].equals(auth.data))
      if (role === undefined) settle(new PairingError('MESHBEE_INVITE_REFUSED', 'The member answered without a role'))
      else settle(null, { key: Buffer.from(auth.key), encryptionKey: auth.encryptionKey === null ? null : Buffer.from(auth.encryptionKey), role })
    }
    const candidate = pairing.addCandidate({ invite: bytes, userData, onadd })
    // 'rejected' also fires for answers that do not decrypt (anyone connected can send bytes): only
    // a status, which needs the invite's public key to encrypt, is a refusal
    candidate.request.on('rejected', (err: { code?: unknown }) => {
      const reason = typeof err?.code === 'string' ? REASON_OF.get(err.code) : undefined
      if (reason === undefined) return
      settle(new PairingError('MESHBEE_INVITE_REFUSED', `The invite was refused${reason === null ? '' : ` (${reason})`}`, reason))
    })
    if (timeout > 0) timer = setTimeout(() => { settle(new PairingError('MESHBEE_PAIR_TIMEOUT', `No member answered within ${timeout} ms`)) }, timeout)
    signal?.addEventListener('abort', onabort)
  })
}
