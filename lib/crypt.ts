/**
 * Encrypted databases: each block of every member log encrypted under a key epoch, as a Hypercore
 * encryption provider, and the keyring that holds the epochs this peer can read.
 *
 * A block as stored is `padding ‖ payload` (Hypercore hashes and signs it so: a seeder verifies
 * what it cannot read). The padding says how to read the payload:
 *
 *   byte 0       kind: 0 clear, 1 sealed
 *   bytes 1-4    the log's fork when the block was written (uint32 LE: part of the nonce)
 *   bytes 5-7    zero
 *   bytes 8-15   the epoch id (sealed blocks; zero for clear ones)
 *
 * Membership blocks (Hyperbee nodes whose key is in the 'm' range: adds, removals, readers and key
 * grants) are stored clear: a seeder must follow membership to know which logs to carry, and a
 * member must find the grants of an epoch before it can read anything under it. They carry writer
 * keys, stamps and sealed keys, nothing of the data. Every other block (data entries, the Hyperbee
 * header) is sealed: XSalsa20 under a key derived from the epoch key and the log's key, the nonce
 * the block's index and the log's fork (unique within a log: a truncated log moves to a new fork).
 * Integrity is the log's signature over the stored bytes; the cipher only hides.
 *
 * An epoch id is a hash of its key: a grant whose sealed key does not hash to the id it names is
 * refused, so nobody can slip a different key in under a known id.
 */
import sodium from 'sodium-universal'
import { decodeNode } from './blocks.js'
import { EPOCH_ID_BYTES, MEMBERSHIP, SEALED_KEY_BYTES } from './entry.js'
import { noReadKey } from './errors.js'

/** Bytes of padding before each block's payload. */
export const PADDING = 16
const CLEAR = 0
const SEALED = 1
const ID_CONTEXT = Buffer.from('meshbee/epoch-id/v1')
const BLOCK_CONTEXT = Buffer.from('meshbee/block-key/v1')

/** The id of an epoch: the first 8 bytes of a keyed-context hash of its key. */
export function epochIdOf (key: Uint8Array): Buffer {
  const out = Buffer.alloc(32)
  sodium.crypto_generichash(out, Buffer.concat([ID_CONTEXT, key]))
  return out.subarray(0, EPOCH_ID_BYTES)
}

/** A fresh random epoch key (32 bytes). */
export function newEpochKey (): Buffer {
  const key = Buffer.alloc(sodium.crypto_stream_KEYBYTES)
  sodium.randombytes_buf(key)
  return key
}

/**
 * A writer's public key for sealed epoch keys (its PRINCIPAL entry): its log's signing key pair
 * converted to X25519. (A Hypercore key is the hash of the log's manifest, not a public key, so
 * each writer states its own, in its own signed log.)
 */
export function boxPublicKey (signingPublicKey: Uint8Array): Buffer {
  const pk = Buffer.alloc(sodium.crypto_box_PUBLICKEYBYTES)
  sodium.crypto_sign_ed25519_pk_to_curve25519(pk, signingPublicKey)
  return pk
}

/** An epoch key sealed to the holder of an X25519 public key (a PRINCIPAL's): 80 bytes, anonymous sender. */
export function sealTo (key: Uint8Array, box: Uint8Array): Buffer | null {
  if (box.byteLength !== sodium.crypto_box_PUBLICKEYBYTES) return null
  const out = Buffer.alloc(SEALED_KEY_BYTES)
  try {
    sodium.crypto_box_seal(out, key, box)
  } catch {
    return null
  }
  return out
}

/** Opens a sealed epoch key with this peer's signing key pair; null if it is not for it or was tampered with. */
export function unseal (sealed: Uint8Array, keyPair: { publicKey: Uint8Array, secretKey: Uint8Array }): Buffer | null {
  if (sealed.byteLength !== SEALED_KEY_BYTES) return null
  const pk = Buffer.alloc(sodium.crypto_box_PUBLICKEYBYTES)
  const sk = Buffer.alloc(sodium.crypto_box_SECRETKEYBYTES)
  try {
    sodium.crypto_sign_ed25519_pk_to_curve25519(pk, keyPair.publicKey)
    sodium.crypto_sign_ed25519_sk_to_curve25519(sk, keyPair.secretKey)
    const out = Buffer.alloc(SEALED_KEY_BYTES - sodium.crypto_box_SEALBYTES)
    return sodium.crypto_box_seal_open(out, sealed, pk, sk) ? out : null
  } catch {
    return null
  } finally {
    sodium.sodium_memzero(sk)
  }
}

/**
 * Whether a log is encrypted, from its first block as stored: a clear Hyperbee header starts with
 * its protobuf tag (0x0a), an encrypted log's with a padding kind byte.
 */
export function encryptedLog (block0: Uint8Array): boolean {
  return block0.byteLength > 0 && block0[0] !== 0x0a
}

/** The Hyperbee node bytes of a stored block if it is clear; null if it is sealed (or no block of this scheme). */
export function clearPayload (stored: Uint8Array): Uint8Array | null {
  if (stored.byteLength < PADDING || stored[0] !== CLEAR) return null
  return stored.subarray(PADDING)
}

/** Whether a Hyperbee block (payload) is a membership node, stored clear. */
function membershipNode (payload: Uint8Array): boolean {
  try {
    const key = decodeNode(payload).key
    return key instanceof Uint8Array && key.byteLength > 0 && key[0] === MEMBERSHIP
  } catch {
    return false
  }
}

/** Hypercore's view of a core, as its encryption provider sees it. */
interface CoreLike { key: Uint8Array }

/**
 * The epoch keys this peer holds, and the Hypercore encryption provider of an encrypted database's
 * logs (one for all of them: block keys are derived per log).
 */
export class Keyring {
  private readonly keys = new Map<string, Buffer>()
  private readonly blockKeys = new Map<string, Buffer>()
  /** The epoch own writes are sealed under (the engine picks it before each write). */
  current: Buffer | null = null

  /** Adds an epoch key; true if it is new. */
  add (key: Uint8Array): boolean {
    const id = epochIdOf(key).toString('hex')
    if (this.keys.has(id)) return false
    this.keys.set(id, Buffer.from(key))
    return true
  }

  /** The key of an epoch (by id, hex), if held. */
  get (id: string): Buffer | undefined {
    return this.keys.get(id)
  }

  has (id: string): boolean {
    return this.keys.has(id)
  }

  /** The ids (hex) of every epoch held. */
  ids (): string[] {
    return [...this.keys.keys()]
  }

  private blockKey (core: CoreLike, id: string): Buffer {
    const ck = Buffer.from(core.key.buffer, core.key.byteOffset, core.key.byteLength).toString('hex') + id
    let k = this.blockKeys.get(ck)
    if (k === undefined) {
      const key = this.keys.get(id)
      if (key === undefined) throw noReadKey(id)
      k = Buffer.alloc(sodium.crypto_stream_KEYBYTES)
      sodium.crypto_generichash(k, Buffer.concat([BLOCK_CONTEXT, core.key, key]))
      this.blockKeys.set(ck, k)
    }
    return k
  }

  /** The provider Hypercore calls (`core.setEncryption`): padding, encrypt before append, decrypt on read. */
  readonly provider = {
    padding: (): number => PADDING,
    encrypt: async (index: number, block: Uint8Array, fork: number, core: CoreLike): Promise<void> => {
      block.fill(0, 0, PADDING)
      const payload = block.subarray(PADDING)
      if (membershipNode(payload)) return // CLEAR, zero padding
      const current = this.current
      if (current === null) throw noReadKey('(none chosen)')
      const id = current.toString('hex')
      const bk = this.blockKey(core, id)
      block[0] = SEALED
      new DataView(block.buffer, block.byteOffset).setUint32(1, fork >>> 0, true)
      block.set(current, 8)
      sodium.crypto_stream_xor(payload, payload, nonce(index, fork), bk)
    },
    decrypt: async (index: number, block: Uint8Array, core: CoreLike): Promise<void> => {
      if (block.byteLength < PADDING || block[0] !== SEALED) return // clear (or foreign bytes: Hyperbee refuses them)
      const fork = new DataView(block.buffer, block.byteOffset).getUint32(1, true)
      const id = Buffer.from(block.subarray(8, PADDING)).toString('hex')
      const payload = block.subarray(PADDING)
      sodium.crypto_stream_xor(payload, payload, nonce(index, fork), this.blockKey(core, id))
    }
  }
}

function nonce (index: number, fork: number): Buffer {
  const n = Buffer.alloc(sodium.crypto_stream_NONCEBYTES)
  n.writeBigUInt64LE(BigInt(index), 0)
  n.writeUInt32LE(fork >>> 0, 8)
  return n
}

/** Whether an error (or its cause) is a read of an epoch this peer does not hold. */
export function isNoReadKey (err: unknown): boolean {
  for (let e = err as { code?: unknown, cause?: unknown } | undefined, i = 0; e !== undefined && e !== null && i < 4; e = e.cause as typeof e, i++) {
    if (e.code === 'MESHBEE_NO_READ_KEY') return true
  }
  return false
}
