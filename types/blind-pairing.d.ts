/** The parts of blind-pairing (and the blind-pairing-core objects it hands out) that lib/pairing.ts uses. */
declare module 'blind-pairing' {
  import type { EventEmitter } from 'node:events'

  /** Extra bytes on an accepting answer, signed by the invite's key pair. */
  export interface AdditionalData { data: Buffer, signature: Buffer }

  export interface CreatedInvite {
    id: Buffer
    invite: Buffer
    seed: Buffer
    publicKey: Buffer
    discoveryKey: Buffer
    expires: number
    additional: AdditionalData | null
  }

  export interface DecodedInvite {
    id: Buffer
    seed: Buffer
    discoveryKey: Buffer | null
    expires: number
    sensitive: boolean
    testInvitation: boolean
    additionalNodes: Array<{ host: string, port: number }> | null
  }

  /** What an accepting answer hands the candidate. */
  export interface PairedAuth { key: Buffer, encryptionKey: Buffer | null, data: Buffer | null }

  /** A request as the member sees it. */
  export interface MemberRequest {
    inviteId: Buffer
    /** Set by open(). */
    userData: Buffer | null
    session: Buffer | null
    response: Buffer | null
    /** Decrypts and checks the request against an invite's public key; throws if it does not open with it. */
    open (publicKey: Buffer): Buffer | null
    confirm (opts: { key: Buffer, encryptionKey?: Buffer | null, additional?: AdditionalData | null }): void
    deny (opts?: { status?: number }): void
  }

  /** A request as the candidate holds it: emits 'rejected' (err) for every answer it cannot accept. */
  export interface CandidateRequest extends EventEmitter {
    discoveryKey: Buffer
    inviteId: Buffer
  }

  export interface Member {
    ready (): Promise<void>
    flushed (): Promise<void>
    close (): Promise<void>
  }

  export interface Candidate {
    request: CandidateRequest
    paired: PairedAuth | null
    close (): Promise<void>
  }

  class BlindPairing {
    constructor (swarm: unknown, opts?: { poll?: number })
    static Invite: unknown
    static createInvite (key: Buffer, opts?: { discoveryKey?: Buffer, expires?: number, seed?: Buffer, data?: Buffer }): CreatedInvite
    static decodeInvite (invite: Buffer): DecodedInvite
    addMember (opts: { discoveryKey: Buffer, announce?: boolean, onadd: (request: MemberRequest) => Promise<void> | void }): Member
    addCandidate (opts: { invite: Buffer, userData: Buffer, onadd?: (auth: PairedAuth) => Promise<void> | void }): Candidate
    close (): Promise<void>
  }
  export default BlindPairing
}
